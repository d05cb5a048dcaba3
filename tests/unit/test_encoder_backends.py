"""Encoder backends (pipeline/encoders): the ONNX export and its int8 form against PyTorch fp32, the index
configuration hash, the quality guard, and vectors embedded ahead of the indexing transaction."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import EncoderSettings, default_encoder_path
from pipeline.embed import Encoder
from pipeline.encoders import check, guard, variant
from pipeline.errors import ConfigError

TEXTS = [
    "Shares in the carmaker rose sharply after it reported record quarterly profits.",
    "The striker scored twice as the home side won the cup final.",
    "Ministers will publish the draft bill on data protection next week.",
    "A new album from the band tops the charts in its first week.",
    "Broadband prices fell as rival providers cut their monthly fees.",
    "x",
]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    return tmp_path_factory.mktemp("encoders")


@pytest.fixture(scope="module")
def reference():
    return Encoder(default_encoder_path()).encode(TEXTS)


def test_backend_and_quantisation_are_checked():
    assert variant("onnx", "int8") == "onnx-int8" and variant("torch", "none") == "torch"
    with pytest.raises(ConfigError, match="DOCPIPE_ENCODER_BACKEND"):
        check("tensorrt", "none")
    with pytest.raises(ConfigError, match="DOCPIPE_ENCODER_QUANTIZE"):
        check("onnx", "int4")
    with pytest.raises(ConfigError, match="onnx or openvino"):
        Encoder(default_encoder_path(), backend="torch", quantize="int8")


@pytest.mark.slow
def test_onnx_fp32_gives_the_torch_vectors_and_is_exported_once(exports, reference):
    encoder = Encoder(default_encoder_path(), backend="onnx", cache_dir=exports)
    vectors = encoder.encode(TEXTS)
    assert vectors.shape == reference.shape and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert (vectors * reference).sum(axis=1).min() > 0.9999
    (graph,) = exports.glob("*/model.onnx")
    assert graph.parent.name.startswith("all-MiniLM-L6-v2-")
    stamp = graph.stat().st_mtime_ns
    again = Encoder(default_encoder_path(), backend="onnx", cache_dir=exports)
    again._graph = None
    from pipeline import embed

    embed._graphs.clear()  # a new process: the file on disk is reused, not exported again
    assert np.allclose(again.encode(TEXTS), vectors, atol=1e-6)
    assert graph.stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_int8_is_close_to_fp32_but_not_equal(exports, reference):
    encoder = Encoder(default_encoder_path(), backend="onnx", quantize="int8", cache_dir=exports)
    vectors = encoder.encode(TEXTS)
    cosines = (vectors * reference).sum(axis=1)
    assert cosines.mean() > 0.97 and cosines.max() < 0.99999  # int8 weights: near, never identical
    assert list(exports.glob("*/model_qint8*.onnx"))
    order = encoder.encode(list(reversed(TEXTS)))  # rows follow the input order whatever the batching
    assert np.allclose(order[::-1], vectors, atol=1e-5)


@pytest.mark.slow
def test_openvino_int8_is_static_quantised_once_and_close_to_fp32(exports, reference):
    import openvino as ov  # the test extra installs it and NNCF

    from pipeline import embed

    encoder = Encoder(default_encoder_path(), backend="openvino", quantize="int8", cache_dir=exports)
    vectors = encoder.encode(TEXTS)
    cosines = (vectors * reference).sum(axis=1)
    assert cosines.mean() > 0.97 and cosines.max() < 0.99999
    (graph,) = exports.glob("*/model_ov_int8.xml")
    assert graph.with_suffix(".bin").is_file() and not list(exports.glob("*/*.partial*"))
    # static: activations are quantised too (FakeQuantize nodes on int8 ranges), not ONNX Runtime's dynamic graph
    ops = {op.get_type_name() for op in ov.Core().read_model(str(graph)).get_ops()}
    assert "FakeQuantize" in ops and "DynamicQuantizeLinear" not in ops
    stamp = graph.stat().st_mtime_ns
    embed._graphs.clear()  # a new process: the IR on disk is reused, not quantised again
    again = Encoder(default_encoder_path(), backend="openvino", quantize="int8", cache_dir=exports).encode(TEXTS)
    assert np.allclose(again, vectors, atol=1e-5)
    assert graph.stat().st_mtime_ns == stamp


def test_openvino_int8_method_joins_the_index_configuration_hash():
    from pipeline.reindex import IndexConfig

    cfg = IndexConfig.for_model(default_encoder_path(), 200, 40, "openvino-int8")
    assert (cfg.extra["encoder"], cfg.extra["encoder_method"]) == ("openvino-int8", "nncf-static")
    assert "encoder_method" not in IndexConfig.for_model(default_encoder_path(), 200, 40, "onnx-int8").extra


def test_encoder_joins_the_index_configuration_hash():
    from pipeline.reindex import IndexConfig

    torch_cfg = IndexConfig.for_model(default_encoder_path(), 200, 40, "torch")
    int8_cfg = IndexConfig.for_model(default_encoder_path(), 200, 40, "onnx-int8")
    assert "encoder" not in torch_cfg.extra  # versions built before backends existed keep their hash
    assert int8_cfg.extra["encoder"] == "onnx-int8"
    assert torch_cfg.hash != int8_cfg.hash
    assert int8_cfg.hash != IndexConfig.for_model(default_encoder_path(), 200, 40, "onnx").hash


class Shifted:
    """A stand-in quantised encoder: the reference's vectors pushed off by `noise`; counts its calls."""

    quantized, variant, batch_size = True, "onnx-int8", 8
    model_path = default_encoder_path()

    def __init__(self, reference, noise: float):
        self.reference, self.noise, self.calls = reference, noise, 0

    def encode(self, texts):
        self.calls += 1
        base = self.reference.encode(texts)
        noisy = base + self.noise * np.random.default_rng(len(texts)).standard_normal(base.shape).astype(np.float32)
        return noisy / np.linalg.norm(noisy, axis=1, keepdims=True)


class Exact:
    variant = "torch"

    def encode(self, texts):
        vectors = np.random.default_rng(sum(map(len, texts))).standard_normal((len(texts), 16)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_knn_overlap_counts_shared_neighbours():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((30, 8))
    assert guard.knn_overlap(a, a, 5) == 1.0
    assert guard.knn_overlap(a, rng.standard_normal((30, 8)), 5) < 0.5


def _tenant_chunks(session, tenant: str, n: int) -> None:
    from pipeline.store.models import Chunk, Document

    for i in range(n):
        text = f"Article {i}: " + TEXTS[i % 5] + f" Item number {i} of the sample."
        session.add(
            Document(
                id=f"{tenant[:4]}{i:04d}",
                tenant=tenant,
                source=f"/{tenant}/{i}.txt",
                content_type="text",
                text=text,
                content_hash=f"h{i}",
                status="indexed",
                cluster_id=f"{tenant[:4]}{i:04d}",
            )
        )
        session.flush()
        session.add(Chunk(id=f"{tenant[:4]}{i:04d}-0", document_id=f"{tenant[:4]}{i:04d}", ordinal=0,
                          char_start=0, char_end=len(text), token_count=20))  # fmt: skip
    session.flush()


def test_guard_stores_its_figures_and_refuses_a_poor_encoder(url):
    from functools import partial

    from pipeline.store.db import session_scope
    from pipeline.store.tenants import get_setting

    exact, settings = Exact(), EncoderSettings(min_cosine=0.98, min_knn_overlap=0.6, guard_sample=40)
    good, poor = Shifted(exact, 0.01), Shifted(exact, 0.5)
    sessions = partial(session_scope, url)
    with session_scope(url) as session:
        _tenant_chunks(session, "acme", 30)
        _tenant_chunks(session, "other", 5)
        assert len(guard.sample_texts(session, "acme", 40)) == 30
        assert all("Article" in t for t in guard.sample_texts(session, "acme", 10))
    quality = guard.assess(sessions, good, "docpipe-chunks-v1", "acme", settings, lambda: exact)
    assert quality is not None and quality.chunks == 30 and quality.mean_cosine > 0.98
    guard.refuse_below(quality, "docpipe-chunks-v1", "acme", settings)  # passes
    assert guard.passed("docpipe-chunks-v1", "acme", "onnx-int8")
    with session_scope(url) as session:
        stored = get_setting(session, "acme", guard.SETTING)["docpipe-chunks-v1"]
        assert stored["encoder"] == "onnx-int8" and stored["chunks"] == 30 and stored["knn_overlap"] >= 0.6
    # another version is judged on its own; the first tenant below refuses it, its figures committed first
    with pytest.raises(ConfigError, match="mean cosine to fp32") as refused:
        guard.judge(sessions, poor, "docpipe-chunks-v2", ["acme", "other"], settings, lambda: exact, building=True)
    assert "for tenant acme" in str(refused.value) and "docpipe reindex --discard" in str(refused.value)
    with session_scope(url) as session:
        assert set(get_setting(session, "acme", guard.SETTING)) == {"docpipe-chunks-v1", "docpipe-chunks-v2"}
    calls = poor.calls
    again = guard.assess(sessions, poor, "docpipe-chunks-v2", "acme", settings, lambda: exact)
    assert again is not None and again.mean_cosine < 0.98 and poor.calls == calls  # read back, not measured again


def test_embedded_ahead_vectors_are_used_only_for_unchanged_chunks():
    from types import SimpleNamespace

    from pipeline.ingest import Embedded, _chunk_key, _vectors

    class Counting:
        model_path, variant = "/m", "torch"

        def __init__(self):
            self.seen: list[str] = []

        def encode(self, texts):
            self.seen += texts
            return np.full((len(texts), 4), 2.0, dtype=np.float32)

    doc = SimpleNamespace(content_hash="a")
    chunks = [SimpleNamespace(id=f"c{i}", char_start=i * 10, char_end=i * 10 + 10) for i in range(3)]
    keys = [_chunk_key(doc, c) for c in chunks]
    encoder = Counting()
    ahead = Embedded({keys[0]: np.ones(4, np.float32), keys[2]: np.ones(4, np.float32)}, 1.0, "/m|torch")
    vectors = _vectors(encoder, keys, ["t0", "t1", "t2"], ahead)
    assert encoder.seen == ["t1"] and vectors[:, 0].tolist() == [1.0, 2.0, 1.0]
    changed = [_chunk_key(SimpleNamespace(content_hash="b"), c) for c in chunks]  # the document was edited
    assert _vectors(encoder, changed, ["u0", "u1", "u2"], ahead)[:, 0].tolist() == [2.0, 2.0, 2.0]
    other_model = Embedded(ahead.vectors, 1.0, "/other|torch")
    assert _vectors(encoder, keys, ["v0", "v1", "v2"], other_model)[:, 0].tolist() == [2.0, 2.0, 2.0]


def test_job_report_says_where_the_wall_time_went():
    from datetime import UTC, datetime, timedelta

    from cli.jobs import _time_lines

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rec = {
        "created_at": t0.isoformat(),
        "started_at": (t0 + timedelta(seconds=2)).isoformat(),
        "finished_at": (t0 + timedelta(seconds=40)).isoformat(),
        "stages": [
            {"stage": "chunk", "seconds": 5.0},
            {"stage": "embed", "seconds": 30.0},
            {"stage": "index", "seconds": 1.0},
        ],
    }
    wall, queued, outside = _time_lines(rec)
    assert "wall 40.00 s" in wall and "ingest queue 5.00 s" in wall and "gpu queue 31.00 s" in wall
    assert queued.startswith("queue wait 2.00 s")
    assert outside.startswith("outside stages 7.00 s")  # 40 - 2 - max(5, 31)
    assert _time_lines({**rec, "finished_at": None}) == []  # a running job has no such account yet
    retried = {"retries": {"count": 3, "seconds": 14.0, "last": "ServiceUnavailable: Elasticsearch unreachable"}}
    *_, outside, retries = _time_lines({**rec, "metrics": retried})
    assert outside == "outside stages 7.00 s (hand-offs, claims, commits; retry waits 14 s in all)"
    assert retries == "retried 3 times while a service was away; last: ServiceUnavailable: Elasticsearch unreachable"
