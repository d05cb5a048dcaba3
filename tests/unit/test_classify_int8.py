"""The int8 classifier on the CPU (pipeline/infer/quantized.py, agreement.py): an ONNX export of each augment kind
close to the torch model, cached once per artefact, and the guard that stores its agreement with fp32 and refuses
a model below the minimum, through the classify task and `docpipe job`."""

from __future__ import annotations

import shutil
import threading
import time

import numpy as np
import pytest

from pipeline.config import InferSettings, Settings
from pipeline.errors import ConfigError
from pipeline.infer import agreement, quantized
from pipeline.infer.predictor import Predictor
from tests.conftest import settings_environment
from tests.ml_support import TOPICS, tiny_bert_config, tokenizer, topic_text  # noqa: F401  (fixtures)

LABELS = ["finance", "science", "sport"]
TEXTS = [topic_text(topic, i, 8 + 9 * (i % 4)) for i in range(20) for topic in sorted(TOPICS)]


def _artefact(folder, tokenizer, augment: str):
    """A tiny randomly initialised Classifier saved as a trained folder; a wide head gives the labels margins."""
    import torch
    from transformers import BertModel

    from pipeline.infer.artefact import ArtefactConfig, save_model
    from pipeline.infer.classifier_model import Classifier

    torch.manual_seed(0)
    config = tiny_bert_config(tokenizer, max_position_embeddings=128)
    dims = 8 if augment == "fusion" else None
    model = Classifier(BertModel(config), len(LABELS), dims).eval()
    with torch.no_grad():
        model.head.weight.normal_(0, 1.0)
    artefact = ArtefactConfig(
        labels=LABELS, augment=augment, neighbours=0 if augment == "none" else 2, max_length=64, neighbour_dims=dims
    )
    save_model(folder, model, tokenizer, artefact)
    return folder


@pytest.fixture(scope="module", params=["none", "concat", "fusion"])
def artefact(request, tokenizer, tmp_path_factory):
    return _artefact(tmp_path_factory.mktemp(f"model-{request.param}"), tokenizer, request.param)


def _neighbours(augment: str) -> dict:
    n = len(TEXTS)
    if augment == "concat":
        return {"passages": [[TEXTS[(i + 7) % n], TEXTS[(i + 11) % n]] for i in range(n)]}
    if augment == "fusion":
        vectors = np.random.default_rng(0).normal(size=(n, 2, 8)).astype(np.float32)
        mask = np.ones((n, 2), dtype=np.int64)
        mask[::3, 1] = 0  # some chunks have fewer neighbours
        return {"vectors": vectors, "vector_mask": mask}
    return {}


def test_the_quantize_setting_is_checked_and_named():
    assert (InferSettings().quantize, InferSettings().min_agreement) == ("none", 0.95)
    assert InferSettings(quantize="int8").quantize == "int8"
    with pytest.raises(ConfigError, match="DOCPIPE_INFER_QUANTIZE='int4' is not one of none, int8"):
        InferSettings(quantize="int4")
    with settings_environment({"DOCPIPE_INFER_QUANTIZE": "fp16"}), pytest.raises(ConfigError, match="'fp16'"):
        Settings()


def test_int8_applies_on_the_cpu_and_a_gpu_is_told_once(caplog):
    import torch

    from pipeline.infer import predictor

    predictor._told.clear()
    with caplog.at_level("INFO", logger="pipeline.infer.predictor"):
        assert predictor.serving_quantize("int8", torch.device("cpu")) == "int8"
        assert [predictor.serving_quantize("int8", torch.device("cuda:0")) for _ in range(3)] == ["none"] * 3
    (told,) = [r.getMessage() for r in caplog.records]
    assert "applies on the CPU only" in told and "cuda:0 run in bf16" in told
    with pytest.raises(ConfigError, match="DOCPIPE_INFER_QUANTIZE"):
        predictor.serving_quantize("int4", torch.device("cpu"))


def test_int8_labels_as_fp32_does_for_every_augment_kind(artefact):
    from pipeline.infer.artefact import read_config

    augment = read_config(artefact).augment
    int8, fp32 = Predictor(artefact, "cpu", quantize="int8"), Predictor(artefact, "cpu")
    assert (int8.variant, fp32.variant) == ("onnx-int8", "torch")
    extra = _neighbours(augment)
    a, b = int8.predict(TEXTS, **extra), fp32.predict(TEXTS, **extra)
    assert a.shape == b.shape == (len(TEXTS), 3) and np.allclose(a.sum(axis=1), 1, atol=1e-5)
    diff = np.abs(a - b)
    assert diff.mean() < 0.02 and diff.max() < 0.1
    assert diff.max() > 1e-6  # int8 weights: near, never identical
    assert np.mean(a.argmax(axis=1) == b.argmax(axis=1)) >= 0.9
    assert len(set(b.argmax(axis=1))) > 1  # the labels agreed on are not one constant
    if extra:  # the neighbours reach the int8 graph as they reach the torch model
        alone = int8.predict(TEXTS)
        assert np.abs(alone - a).max() > 1e-3
        assert np.abs(alone - fp32.predict(TEXTS)).mean() < 0.02


def test_the_fp32_graph_is_the_torch_model_whatever_the_padding(artefact):
    """The export itself is exact: what int8 changes is the weights. A batch with no padding reaches the graph
    with attention_mask None and no token_type_ids, as the engine hands it over."""
    import torch

    from pipeline.infer.artefact import load_model, read_config

    config = read_config(artefact)
    model, tok, _ = load_model(artefact, torch.device("cpu"))
    graph = quantized.GraphForward(quantized.classifier_graph(artefact, "none"))
    padded = tok(TEXTS[:6], padding=True, return_tensors="pt")
    alike = tok([TEXTS[0]] * 3, return_tensors="pt")
    extras: dict = {}
    if config.augment == "fusion":
        extras = {"neighbours": torch.randn(6, 2, 8), "neighbour_mask": torch.tensor([[1, 1], [1, 0]] * 3)}
    with torch.inference_mode():
        expected = model(padded["input_ids"], padded["attention_mask"], padded["token_type_ids"], **extras)
        got = graph(padded["input_ids"], padded["attention_mask"], padded["token_type_ids"], **extras)
        assert torch.allclose(got, expected, atol=1e-4)
        few = {k: v[:3] for k, v in extras.items()}
        unpadded = graph(alike["input_ids"], None, None, **few)
        assert torch.allclose(unpadded, model(alike["input_ids"], alike["attention_mask"], None, **few), atol=1e-4)
    assert unpadded.shape == (3, 3)


def test_the_export_is_cached_in_the_artefact_and_follows_its_content(artefact, tmp_path, monkeypatch):
    Predictor(artefact, "cpu", quantize="int8")  # exported (the module's first test may have done it already)
    (folder,) = artefact.glob("onnx-*")
    graphs = sorted(p.name for p in folder.glob("*.onnx"))
    assert graphs[0] == "classifier.onnx" and graphs[1].startswith("classifier_qint8")
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.onnx")}

    def no_export(*args):
        raise AssertionError("exported again")

    monkeypatch.setattr(quantized, "export_classifier", no_export)
    again = Predictor(artefact, "cpu", quantize="int8")  # another process: the files on disk are read
    assert again.predict(TEXTS[:2]).shape == (2, 3)
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("*.onnx")} == stamps
    copy = shutil.copytree(artefact, tmp_path / "copy")
    assert quantized.export_dir(copy).name == folder.name  # the same model: the same key
    import torch

    head = torch.load(copy / "head.pt", weights_only=True)
    head["head.bias"] = head["head.bias"] + 1
    torch.save(head, copy / "head.pt")  # the folder saved again with other weights
    assert quantized.export_dir(copy).name != folder.name


def test_processes_that_start_together_export_once(tmp_path):
    from pipeline.encoders.onnx import build_graph

    calls = []

    def export(target):
        calls.append(target)
        time.sleep(0.3)  # long enough for the other thread to reach the lock
        target.write_bytes(b"graph")

    results: list = []
    threads = [
        threading.Thread(target=lambda: results.append(build_graph(tmp_path / "g", "none", export, "classifier")))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and results == [tmp_path / "g" / "classifier.onnx"] * 2
    assert not list((tmp_path / "g").glob("*.partial"))


def _tenant(url, tenant: str, n: int, artefact, live: bool = True) -> str:
    """n indexed single-chunk documents of `tenant`, a ready (live) model for the folder, a classify job pinned to
    it; the job's id."""
    from pipeline.store import repo
    from pipeline.store.db import session_scope
    from pipeline.store.models import Chunk, Document
    from pipeline.store.models_ml import ModelRecord

    with session_scope(url) as s:
        for i in range(n):
            text = TEXTS[i % len(TEXTS)]
            doc_id = f"{tenant[:4]}{i:04d}"
            s.add(
                Document(
                    id=doc_id, tenant=tenant, source=f"/{tenant}/{i}.txt", content_type="text", text=text,
                    content_hash=f"h{i}", status="indexed", cluster_id=doc_id, chunk_count=1,
                )
            )  # fmt: skip
            s.flush()
            s.add(Chunk(id=f"{doc_id}-0", document_id=doc_id, ordinal=0, char_start=0, char_end=len(text),
                        token_count=20))  # fmt: skip
        s.add(
            ModelRecord(
                id="m1", tenant=tenant, task="topic", base_model="tiny", data_hash="h", labels=LABELS,
                status="ready", live=live, artefact_path=str(artefact), metrics={"baseline": {"accuracy": 0.9}},
            )
        )  # fmt: skip
        options = {"task": "topic", "model_id": "m1", "artefact": str(artefact), "index": "docpipe-chunks-read"}
        return repo.create_job(s, tenant, [], kind="classify", options=options).id


@pytest.fixture
def plain(tokenizer, tmp_path):
    return _artefact(tmp_path / "model", tokenizer, "none")


def test_the_guard_stores_its_figures_with_the_model_and_refuses_below_the_minimum(url, plain):
    from pipeline.infer.classify_run import admit_predictor
    from pipeline.store.db import session_scope
    from pipeline.store.models import Job
    from pipeline.store.models_ml import ModelRecord

    job_id = _tenant(url, "acme", 40, plain)

    def sessions():
        return session_scope(url)

    int8, loads = Predictor(plain, "cpu", quantize="int8"), []

    def reference():
        loads.append(1)
        return Predictor(plain, "cpu")

    admit_predictor(sessions, job_id, "m1", int8, reference, 30, 0.5)
    assert loads == [1]
    with session_scope(url) as s:
        figures = s.get(ModelRecord, "m1").metrics
        run = s.get(Job, job_id).metrics["classify"]
    assert figures["baseline"] == {"accuracy": 0.9}  # the training figures stay
    stored = figures["onnx-int8"]
    assert stored["predictor"] == "onnx-int8" and stored["reference"] == "torch" and stored["chunks"] == 30
    assert stored["label_agreement"] >= 0.9 and 0 < stored["mean_abs_diff"] < 0.02 and stored["measured_at"]
    assert run["predictor"] == "onnx-int8"
    assert run["agreement"] == {k: v for k, v in stored.items() if k != "measured_at"}

    # every worker reads that one verdict, taken against its own minimum: nothing is measured again
    with pytest.raises(ConfigError) as refused:
        admit_predictor(sessions, job_id, "m1", int8, reference, 30, 1.01)
    assert loads == [1]
    message = str(refused.value)
    assert "onnx-int8 classifier may not serve model m1" in message and "of 30 chunks, below 101.00%" in message
    assert message.endswith("set DOCPIPE_INFER_QUANTIZE=none or lower DOCPIPE_INFER_MIN_AGREEMENT")
    assert "\n" not in message

    torch_predictor = Predictor(plain, "cpu")
    admit_predictor(sessions, job_id, "m1", torch_predictor, reference, 30, 1.01)  # fp32 is never judged
    with session_scope(url) as s:
        assert s.get(Job, job_id).metrics["classify"]["predictor"] == "torch"
    assert loads == [1]


def test_measure_counts_label_agreement_and_probability_difference():
    class Fixed:
        def __init__(self, variant, rows):
            self.variant, self.rows = variant, np.array(rows, dtype=np.float32)

        def predict(self, texts):
            return self.rows[: len(texts)]

    a = Fixed("onnx-int8", [[0.6, 0.4], [0.3, 0.7], [0.5, 0.5], [0.9, 0.1]])
    b = Fixed("torch", [[0.7, 0.3], [0.6, 0.4], [0.5, 0.5], [0.9, 0.1]])
    got = agreement.measure(a, b, ["w", "x", "y", "z"])
    assert (got.chunks, got.label_agreement) == (4, 0.75)
    assert got.mean_abs_diff == pytest.approx(0.1, abs=1e-6) and got.max_abs_diff == pytest.approx(0.3, abs=1e-6)
    assert agreement.verdict(got, 0.75) is None and "75.00% of 4 chunks" in agreement.verdict(got, 0.8)


def test_a_refused_int8_classify_job_fails_with_what_to_set_and_the_live_model_stays(url, plain):
    from typer.testing import CliRunner

    from cli.main import app
    from pipeline.store.db import session_scope
    from pipeline.store.models import Job, JobState
    from pipeline.store.models_ml import ModelRecord
    from workers.tasks_ml import classify

    job_id = _tenant(url, "acme", 12, plain)
    env = {
        "DOCPIPE_DATABASE_URL": url,
        "DOCPIPE_DEVICE": "cpu",
        "DOCPIPE_INFER_QUANTIZE": "int8",
        "DOCPIPE_INFER_MIN_AGREEMENT": "1.01",
        "DOCPIPE_API_URL": "",
    }
    from workers import runtime

    runtime.sql_url.cache_clear()  # a task run earlier in this process keeps its database URL cached
    try:
        with settings_environment(env):
            classify.run(job_id)  # the task's own code, in this process
            shown = CliRunner().invoke(app, ["job", job_id])
    finally:
        runtime.sql_url.cache_clear()
    with session_scope(url) as s:
        job, model = s.get(Job, job_id), s.get(ModelRecord, "m1")
        assert job.state == JobState.FAILED
        assert "may not serve model m1" in job.error and "set DOCPIPE_INFER_QUANTIZE=none" in job.error
        assert "the live model was left as it is" in job.error
        assert model.live and model.status == "ready" and model.metrics["onnx-int8"]["chunks"] == 12
        assert job.metrics["classify"]["predictor"] == "onnx-int8"
    assert shown.exit_code == 0, shown.output
    assert "predictor onnx-int8: labels agree with torch fp32 on" in shown.output and "of 12 chunks" in shown.output


def test_a_live_feed_model_scores_with_int8_once_its_agreement_passes_and_falls_back_below_it(url, plain, caplog):
    from pipeline.monitor.topics import live_topic_classifier
    from pipeline.store.db import session_scope
    from pipeline.store.models_ml import ModelRecord

    _tenant(url, "feeds", 40, plain)
    env = {"DOCPIPE_INFER_QUANTIZE": "int8", "DOCPIPE_INFER_GUARD_SAMPLE": "30"}
    with settings_environment(env), session_scope(url) as s:
        found = live_topic_classifier(s, "feeds", "cpu")
        assert found is not None and found.predictor.variant == "onnx-int8"
    with session_scope(url) as s:
        stored = s.get(ModelRecord, "m1").metrics["onnx-int8"]
    assert stored["chunks"] == 30 and stored["label_agreement"] >= 0.9  # measured once, kept with the model

    # a stricter minimum reads the same figures and scores with fp32 rather than stop the monitor
    with settings_environment({**env, "DOCPIPE_INFER_MIN_AGREEMENT": "1.01"}), session_scope(url) as s:
        for _ in range(3):  # a scoring batch each
            found = live_topic_classifier(s, "feeds", "cpu")
            assert found is not None and found.predictor.variant == "torch"
        assert s.get(ModelRecord, "m1").metrics["onnx-int8"]["measured_at"] == stored["measured_at"]
    assert sum("scores with fp32, not onnx-int8" in r.getMessage() for r in caplog.records) == 1
    with session_scope(url) as s:  # int8 not asked for: the torch model, nothing measured
        found = live_topic_classifier(s, "feeds", "cpu")
        assert found is not None and found.predictor.variant == "torch"
