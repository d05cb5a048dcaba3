"""Training data validation, metrics, and the training loop (tiny model): resume, fusion, artefacts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import ConfigError
from pipeline.infer.artefact import read_config, save_model
from pipeline.infer.predictor import Predictor
from pipeline.train.data import DataError, data_hash, load_examples, split, validate
from pipeline.train.metrics import classification_report
from pipeline.train.trainer import Cancelled, Split, TrainConfig, train_run
from tests.ml_support import tiny_base, tokenizer, topic_rows  # noqa: F401  (fixtures)


def _df(rows):
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    "rows,cols,message",
    [
        ([{"text": "a", "label": "x"}], ("body", "label"), "missing column(s) 'body'"),
        (
            [
                {"text": "a", "label": "x"},
                {"text": "  ", "label": "y"},
                {"text": "b", "label": "y"},
                {"text": "c", "label": "x"},
            ],
            ("text", "label"),
            "empty text in column 'text': 1 row(s) (data rows 2)",
        ),
        ([{"text": "a", "label": "x"}, {"text": "b", "label": "x"}], ("text", "label"), "single class"),
        (
            [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}, {"text": "c", "label": "z"}],
            ("text", "label"),
            "3 classes for only 3 rows",
        ),
        ([], ("text", "label"), "holds no rows"),
    ],
)
def test_validation_refuses_bad_tables_with_a_reason(rows, cols, message):
    with pytest.raises(DataError) as err:
        validate(_df(rows) if rows else pd.DataFrame(columns=["text", "label"]), *cols)
    assert message in str(err.value)


def test_reads_csv_jsonl_and_parquet_alike(tmp_path):
    rows = topic_rows(12)
    pd.DataFrame(rows).to_csv(tmp_path / "d.csv", index=False)
    pd.DataFrame(rows).to_parquet(tmp_path / "d.parquet")
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    loaded = [load_examples(tmp_path / f"d.{ext}", "text", "label", "id") for ext in ("csv", "jsonl", "parquet")]
    assert len({data_hash(e) for e in loaded}) == 1
    assert loaded[0].label_set == ["finance", "science", "sport"] and loaded[0].ids[3] == "ex-3"
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="cannot be read as parquet"):
        load_examples(tmp_path / "bad.parquet", "text", "label")
    with pytest.raises(DataError, match="unsupported data file type .xlsx"):
        load_examples(tmp_path / "d.xlsx", "text", "label")


def test_time_split_holds_out_the_latest_and_refuses_labels_never_trained_on():
    rows = [{"text": f"t{i}", "label": "a" if i % 2 else "b", "when": f"2024-01-{i + 1:02d}"} for i in range(10)]
    ex = validate(_df(rows), "text", "label", time_col="when")
    train, held = split(ex, 0.2, seed=1)
    assert held == [8, 9] and max(ex.times[i] for i in train) < min(ex.times[i] for i in held)
    rows[9]["label"] = "c"  # only among the latest rows
    with pytest.raises(DataError, match="'c' occur only in the held-out split"):
        split(validate(_df(rows), "text", "label", time_col="when"), 0.2, seed=1)
    rows[3]["when"] = "not a date"
    with pytest.raises(DataError, match="unreadable times: 1 row"):
        validate(_df(rows), "text", "label", time_col="when")


def test_stratified_split_keeps_every_class_in_training():
    ex = validate(_df(topic_rows(30)), "text", "label")
    train, held = split(ex, 0.2, seed=3)
    assert sorted(train + held) == list(range(30)) and len(held) == 6
    assert {ex.labels[i] for i in held} == {ex.labels[i] for i in train} == set(ex.label_set)


def test_classification_report():
    m = classification_report(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0]), ["a", "b", "c"])
    assert m["accuracy"] == 0.6
    assert m["per_class"]["a"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert m["per_class"]["b"]["precision"] == round(2 / 3, 4) and m["per_class"]["c"]["f1"] == 0.0
    assert m["macro_f1"] == round((0.5 + 0.8 + 0.0) / 3, 4)


def _splits(augment: str, k: int = 2, dims: int = 8):
    ex = validate(_df(topic_rows(60)), "text", "label")
    train, held = split(ex, 0.25, seed=0)
    targets = ex.targets()
    rng = np.random.default_rng(0)

    def side(rows):
        s = Split([ex.texts[i] for i in rows], targets[rows])
        if augment == "concat":
            s.passages = [[f"passage about {ex.labels[i]}"] * k for i in rows]
        if augment == "fusion":
            s.vectors = rng.normal(size=(len(rows), k, dims)).astype(np.float32)
            s.mask = np.ones((len(rows), k), dtype=np.int64)
            s.mask[::3, 1] = 0  # some examples have fewer neighbours
        return s

    return ex, side(train), side(held)


def _cfg(base, augment="none", **kw):
    ex = validate(_df(topic_rows(60)), "text", "label")
    options = {
        "max_length": 48,
        "neighbours": 2 if augment != "none" else 0,
        "epochs": 2,
        "batch_size": 8,
        "neighbour_dims": 8 if augment == "fusion" else None,
        "lr": 1e-3,
        "checkpoint_steps": 3,
        "device": "cpu",
        **kw,
    }
    return TrainConfig(base_model=base, augment=augment, labels=ex.label_set, **options)


@pytest.mark.slow  # trains twice, with a resume in between
def test_a_run_killed_after_a_checkpoint_resumes_to_the_same_model(tiny_base, tmp_path):
    _, train, held = _splits("none")
    cfg = _cfg(tiny_base)
    _, _, straight = train_run(cfg, train, held, tmp_path / "straight")

    def stop_at_4(kind, info):
        if kind == "step" and info["step"] == 4:
            raise Cancelled()

    with pytest.raises(Cancelled):
        train_run(cfg, train, held, tmp_path / "resumed", stop_at_4)
    events = []
    _, _, resumed = train_run(cfg, train, held, tmp_path / "resumed", lambda k, i: events.append((k, i)))
    assert resumed["resumed_from_step"] == 3  # the last checkpoint before the kill
    assert events[0] == ("resumed", {"step": 3, "total_steps": straight["total_steps"]})
    assert resumed["steps"] == straight["steps"] == straight["total_steps"] == 12
    assert [h["loss"] for h in resumed["history"]][1:] == [h["loss"] for h in straight["history"]][1:]
    assert resumed["metrics"] == straight["metrics"]
    assert [h["epoch"] for h in straight["history"]] == [1, 2]


@pytest.mark.slow  # trains a model per augmentation
@pytest.mark.parametrize("augment", ["concat", "fusion"])
def test_augmented_runs_save_folders_that_predict_like_the_trained_model(tiny_base, tmp_path, augment):
    _, train, held = _splits(augment)
    cfg = _cfg(tiny_base, augment, patience=1)
    model, tok, result = train_run(cfg, train, held, tmp_path / "run")
    assert result["metrics"]["examples"] == len(held.texts) and result["best_epoch"] in (1, 2)
    folder = tmp_path / "model"
    save_model(folder, model, tok, cfg.artefact())
    assert read_config(folder).augment == augment
    predictor = Predictor(folder, "cpu")
    probs = predictor.predict(held.texts, held.passages, held.vectors, held.mask)
    assert probs.shape == (len(held.texts), 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    predicted = probs.argmax(1)
    assert round(float(np.mean(predicted == held.targets)), 4) == result["metrics"]["accuracy"]
    alone = predictor.predict(held.texts)  # the same texts without their neighbours
    assert not np.allclose(alone, probs, atol=1e-4)  # the neighbours do reach the prediction


def test_corrupt_or_mismatched_model_folders_are_refused_with_the_reason(tiny_base, tmp_path):
    _, train, held = _splits("none")
    cfg = _cfg(tiny_base, epochs=0.2)
    model, tok, _ = train_run(cfg, train, held, tmp_path / "run")
    folder = tmp_path / "model"
    save_model(folder, model, tok, cfg.artefact())
    meta = json.loads((folder / "docpipe_model.json").read_text())
    (folder / "docpipe_model.json").write_text(json.dumps({**meta, "labels": ["a", "b"]}))
    with pytest.raises(ConfigError, match="the head has 3 classes but 2 labels"):
        read_config(folder)
    (folder / "docpipe_model.json").write_text(json.dumps(meta))
    (folder / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="cannot be loaded"):
        Predictor(folder, "cpu")
    (folder / "docpipe_model.json").write_text("{")
    with pytest.raises(ConfigError, match="is corrupt"):
        read_config(folder)
    with pytest.raises(ConfigError, match="base model .* cannot be loaded"):
        train_run(_cfg(str(tmp_path / "nowhere")), train, held, tmp_path / "run2")


def test_example_ids_match_sources_at_separators_only():
    from pipeline.neighbours import source_keys

    keys = set(source_keys("/data/feeds/rec-1"))
    assert {"/data/feeds/rec-1", "rec-1", "1", "feeds/rec-1", "/rec-1"} <= keys
    assert "ec-1" not in keys and "1" not in set(source_keys("rec-11"))
    assert "a0.txt" in set(source_keys("/tmp/corpus/a0.txt")) and "0.txt" not in set(source_keys("/tmp/a0.txt"))


def test_train_requests_are_checked_and_summarised():
    from pipeline.train.job import TrainRequest, summarise

    request = TrainRequest.from_options(
        {
            "data": "d.csv",
            "text_col": "t",
            "label_col": "l",
            "augment": "fusion",
            "compare": True,
            "unknown_option": 1,
            "neighbours": None,
        }
    )
    assert request.neighbours == 3 and request.modes() == ["fusion", "none"]
    for bad, message in (
        ({"augment": "magic"}, "unknown augmentation"),
        ({"epochs": 0}, "--epochs"),
        ({"augment": "concat", "neighbours": 0}, "--neighbours"),
        ({"max_length": 8}, "--max-length"),
    ):
        with pytest.raises(DataError, match=message):
            TrainRequest.from_options({"data": "d", "text_col": "t", "label_col": "l", **bad}).check()

    def result(acc, f1):
        return {"metrics": {"accuracy": acc, "macro_f1": f1}, "best_epoch": 1, "examples_per_s": 9.0}

    summary = summarise(request, {"fusion": result(0.9, 0.88), "none": result(0.8, 0.75)})
    assert summary["retrieval"]["augment"] == "fusion" and summary["baseline"]["augment"] == "none"
    assert summary["gain"] == {"accuracy": 0.1, "macro_f1": 0.13}
