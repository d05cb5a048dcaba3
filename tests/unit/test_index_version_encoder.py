"""An index version's encoder variant is its SQL row's: ingest, queries, builds and repairs use it whatever
DOCPIPE_ENCODER_* say now; a row written before migration 0020 (no variant) learns it from its index's _meta."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest
from elasticsearch import NotFoundError

from pipeline.config import default_encoder_path, get_settings
from pipeline.encoders import BACKENDS, QUANTIZE, split, variant
from pipeline.errors import ConfigError
from pipeline.reindex import IndexConfig, Tools, create_reindex_job, live_index, live_row, search_target
from pipeline.reindex.build import _config, plan_build
from pipeline.store.db import session_scope
from pipeline.store.models import IndexVersion

PREFIX = "enc"
MODEL = default_encoder_path()


class Layout:
    """The index layout with no Elasticsearch behind it: the versions it holds and the _meta `extra` of each."""

    prefix = PREFIX

    def __init__(self):
        self.extra: dict[str, dict] = {}
        self.es = SimpleNamespace(indices=SimpleNamespace(get_mapping=self._mapping))

    def _mapping(self, index: str):
        return SimpleNamespace(body={index: {"mappings": {"_meta": {"extra": self.meta_extra(index)}}}})

    def meta_extra(self, index: str) -> dict:
        if index not in self.extra:
            raise NotFoundError("index_not_found_exception", SimpleNamespace(status=404), {})
        return self.extra[index]

    def index_name(self, n: int) -> str:
        return f"{PREFIX}-v{n}"

    def version_of(self, name: str) -> int | None:
        return int(name.rsplit("-v", 1)[1])

    def versions(self) -> list[str]:
        return sorted(self.extra, key=self.version_of)

    def ensure_live(self, dims: int, *, extra: dict | None = None) -> str:
        self.extra.setdefault(self.index_name(1), extra or {})
        return self.index_name(1)


@pytest.fixture
def configure(monkeypatch):
    """configure(backend, quantize): what DOCPIPE_ENCODER_* say for the rest of the test."""

    def to(backend: str, quantize: str) -> None:
        monkeypatch.setenv("DOCPIPE_ENCODER_BACKEND", backend)
        monkeypatch.setenv("DOCPIPE_ENCODER_QUANTIZE", quantize)
        get_settings.cache_clear()

    yield to
    get_settings.cache_clear()  # before monkeypatch restores the environment: the next read sees it restored


def _live(session, layout: Layout, encoder: str | None, built_with: str = "torch") -> IndexVersion:
    """The live version, recording `encoder` (None: a row from before migration 0020), its index built with
    `encoder` or, for such a row, `built_with`."""
    config = IndexConfig.for_model(MODEL, 200, 40, encoder or built_with)
    row = IndexVersion(
        name=layout.index_name(1),
        version=1,
        config_hash=config.hash,
        model=config.model_name,
        model_path=MODEL,
        dims=config.dims,
        chunk_tokens=200,
        chunk_overlap=40,
        encoder=encoder,
        state="live",
    )
    session.add(row)
    layout.extra[row.name] = config.extra
    session.flush()
    return row


def _tools(layout: Layout, calls: list | None = None, **defaults) -> Tools:
    """Tools whose encoders are only asked for: `calls` gets the (model path, variant) of each."""
    calls = [] if calls is None else calls
    return Tools(
        layout=layout,
        encoder_for=lambda path, kind: calls.append((path, kind)),
        chunker_for=lambda *_: None,
        default_model=MODEL,
        default_tokens=200,
        default_overlap=40,
        **defaults,
    )


def test_every_variant_splits_back_into_its_backend_and_quantisation():
    words = []
    for backend in BACKENDS:
        for quantize in QUANTIZE:
            try:
                words.append((variant(backend, quantize), (backend, quantize)))
            except ConfigError:
                continue  # torch with int8: no such variant
    assert [w for w, _ in words] == ["torch", "onnx", "onnx-int8", "openvino", "openvino-int8"]
    for word, parts in words:
        assert split(word) == parts


@pytest.mark.parametrize("junk", ["", "tensorrt", "torch-int8", "onnx-none", "onnx-int4", "onnx-int8-x", "ONNX", "-"])
def test_a_word_no_variant_spells_is_refused(junk):
    with pytest.raises(ConfigError, match="not an encoder variant"):
        split(junk)


def test_the_recorded_variant_serves_ingest_and_queries_whatever_the_settings_say(url, configure):
    configure("torch", "none")
    layout = Layout()
    with session_scope(url) as s:
        row = _live(s, layout, "onnx-int8")
        assert live_index(s, layout, MODEL, 200, 40).encoder == "onnx-int8"
        assert live_index(s, layout, MODEL, 200, 40, "torch").encoder == "onnx-int8"
        assert search_target(s, PREFIX, MODEL) == (row.name, MODEL, "onnx-int8")
        assert search_target(s, PREFIX, MODEL, "torch").encoder == "onnx-int8"
        calls: list = []
        _tools(layout, calls).encoder_of(row)  # what a build's writes, a repair or a rollback's catch-up embed with
        assert calls == [(MODEL, "onnx-int8")]


def test_a_row_written_before_0020_learns_its_variant_from_its_index_once(url, configure):
    configure("openvino", "int8")  # the settings changed since the version was built
    layout = Layout()
    with session_scope(url) as s:
        row = _live(s, layout, None, built_with="onnx-int8")
        assert search_target(s, PREFIX, MODEL).encoder == "openvino-int8"  # before any worker looked: the settings
        assert live_index(s, layout, MODEL, 200, 40).encoder == "onnx-int8"
        assert row.encoder == "onnx-int8"  # recorded: from now on the row says
        assert search_target(s, PREFIX, MODEL).encoder == "onnx-int8"
        assert _tools(layout).variant_of(row) == "onnx-int8"
        # PyTorch's versions carry no encoder in their _meta
        row.encoder, layout.extra[row.name] = None, IndexConfig.for_model(MODEL, 200, 40, "torch").extra
        assert _tools(layout).variant_of(row) == "torch"  # a rollback's catch-up or a repair of such a version
        assert live_index(s, layout, MODEL, 200, 40).encoder == "torch"
        # an index gone from Elasticsearch: the settings, and nothing recorded
        row.encoder = None
        del layout.extra[row.name]
        assert live_index(s, layout, MODEL, 200, 40).encoder == "openvino-int8" and row.encoder is None
        assert _tools(layout).variant_of(row) == "openvino-int8"
    # no version yet: the read alias, embedded as the settings say
    with session_scope(url) as s:
        s.delete(live_row(s, PREFIX))
    with session_scope(url) as s:
        assert search_target(s, PREFIX, MODEL) == (f"{PREFIX}-read", MODEL, "openvino-int8")


def test_the_first_version_records_the_variant_it_is_created_with(url):  # on a fresh cluster
    layout = Layout()
    with session_scope(url) as s:
        live = live_index(s, layout, MODEL, 200, 40, "onnx")
    with session_scope(url) as s:
        row = live_row(s, PREFIX)
        assert row is not None and (row.name, row.encoder, live.encoder) == (live.name, "onnx", "onnx")
        assert layout.extra[row.name]["encoder"] == "onnx"  # the same fact as the index's _meta


def test_a_build_records_the_variant_it_is_built_with_and_keeps_it(url):
    layout = Layout()
    with session_scope(url) as s:
        _live(s, layout, "torch")
        job = create_reindex_job(s, {"action": "build", "reason": "int8"})
        tools = _tools(layout, default_encoder="onnx-int8")  # what DOCPIPE_ENCODER_* say when the job plans
        build = plan_build(s, job, tools)
        assert build is not None and build.encoder == "onnx-int8" and build.state == "building"
        assert build.config_hash == IndexConfig.for_model(MODEL, 200, 40, "onnx-int8").hash
        assert job.options["mode"] == "embed"  # another encoder: the vectors are computed again, not copied
        # the settings change again before the next step: the build goes on with its own variant
        later = replace(tools, default_encoder="openvino")
        assert _config(later, build).encoder == "onnx-int8"
        assert _config(later, build).extra["encoder"] == "onnx-int8"
