"""Bad input to the ml commands: refused up front by the CLI (exit 2), or failing the job with the
reason; an unusable model folder never replaces or removes the live model."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from cli.main import app
from pipeline.infer.artefact import ArtefactConfig, save_model
from pipeline.infer.labels import UnknownLabel, label_filter
from pipeline.store import model_registry, repo
from pipeline.store.db import session_scope
from pipeline.store.models_ml import ModelRecord
from tests.ml_support import docpipe, docpipe_json, tiny_bert_config, tokenizer, topic_rows, write_rows  # noqa: F401

pytestmark = pytest.mark.integration
TENANT = "t-ml-err"


def _cli(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize(
    "rows,args,message",
    [
        ([{"text": "a", "label": "x"}] * 4, ["--text-col", "body"], "missing column(s) 'body'"),
        ([{"text": "a", "label": "x"}, {"text": " ", "label": "y"}] * 2, [], "empty text in column 'text'"),
        ([{"text": "a", "label": "x"}] * 4, [], "single class"),
        ([{"text": "a", "label": "x"}, {"text": "b", "label": "y"}], [], "2 classes for only 2 rows"),
        (
            [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}] * 3,
            ["--augment", "magic"],
            "'magic' is not one of 'none', 'concat', 'fusion'",
        ),
    ],
)
def test_the_cli_refuses_bad_data_before_queueing(tmp_path, rows, args, message):
    data = write_rows(tmp_path / "d.csv", rows)
    base = ["train", str(data), "--text-col", "text", "--label-col", "label"]
    if args[:1] == ["--text-col"]:
        base = ["train", str(data), "--label-col", "label"]
    result = _cli(*base, *args)
    assert result.exit_code == 2 and message in result.output, result.output


def test_the_cli_refuses_missing_files_and_contradictory_options(stack, tmp_path):
    result = _cli("train", str(tmp_path / "nope.csv"), "--text-col", "t", "--label-col", "l")
    assert result.exit_code == 2 and "no such data file" in result.output
    (tmp_path / "d.xlsx").write_text("x")
    result = _cli("train", str(tmp_path / "d.xlsx"), "--text-col", "t", "--label-col", "l")
    assert result.exit_code == 2 and "unsupported data file type .xlsx" in result.output
    assert _cli("classify", "--job", "abc", "--query", "q").exit_code == 2
    result = _cli("classify", "--tenant", TENANT, "--task", "nothing-live")
    assert result.exit_code == 2 and "no live model for task 'nothing-live'" in result.output


@pytest.fixture
def live_model(stack, tokenizer, tmp_path):  # noqa: F811
    """A small valid model folder, registered ready and promoted for (TENANT, topic)."""
    import torch
    from transformers import BertModel

    from pipeline.infer.classifier_model import Classifier

    torch.manual_seed(0)
    config = tiny_bert_config(tokenizer, num_hidden_layers=1)
    folder = tmp_path / "live-model"
    save_model(
        folder, Classifier(BertModel(config), 2), tokenizer, ArtefactConfig(labels=["neg", "pos"], max_length=64)
    )
    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as s:
        for old in model_registry.list_models(s, TENANT):
            s.delete(old)
        s.flush()
        model = _ready_model(folder)
        s.add(model)
        model_registry.promote(s, model)
        return model.id, folder


def _ready_model(folder) -> ModelRecord:
    """A ready two-label topic model of TENANT over a model folder."""
    return ModelRecord(
        id=repo.new_id(),
        tenant=TENANT,
        task="topic",
        base_model="tiny",
        labels=["neg", "pos"],
        data_hash="x",
        artefact_path=str(folder),
        status="ready",
        metrics={},
        params={},
    )


def _live_id(stack) -> str | None:
    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as s:
        m = model_registry.live_model(s, TENANT, "topic")
        return m.id if m else None


def _queue_train(stack, options: dict) -> str:
    from workers.app import configure
    from workers.tasks_ml import train

    configure(stack.settings())
    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as s:
        job_id = repo.create_job(s, TENANT, [options["data"]], kind="train", options=options).id
    train.delay(job_id)
    return job_id


def test_data_the_worker_finds_bad_fails_the_job_with_the_reason(stack, tmp_path):
    """What the CLI checked may change before the worker reads it (or the job came from elsewhere)."""
    single = write_rows(tmp_path / "single.csv", [{"text": "same", "label": "only"}] * 30)
    job = stack.wait(_queue_train(stack, {"data": str(single), "text_col": "text", "label_col": "label"}), 300)
    assert job.state == "failed" and "single class" in job.error
    gone = str(tmp_path / "gone.parquet")
    job = stack.wait(_queue_train(stack, {"data": gone, "text_col": "text", "label_col": "label"}), 300)
    assert job.state == "failed" and f"data file {gone} does not exist" in job.error


def test_unusable_model_folders_fail_their_job_and_the_live_model_stays_live(stack, live_model, tmp_path):
    live_id, folder = live_model
    data = write_rows(tmp_path / "d.csv", topic_rows(30))
    broken_base = tmp_path / "broken-base"
    broken_base.mkdir()
    (broken_base / "config.json").write_text("{ not json")
    code, rec = docpipe_json(
        "train",
        str(data),
        "--text-col",
        "text",
        "--label-col",
        "label",
        "--tenant",
        TENANT,
        "--task",
        "topic",
        "--base-model",
        str(broken_base),
        "--wait",
    )
    assert code == 1 and rec["state"] == "failed" and "cannot be loaded" in rec["error"]
    assert rec["model"]["status"] == "failed" and "cannot be loaded" in rec["model"]["error"]
    assert _live_id(stack) == live_id

    # a copy whose weights are corrupt cannot be promoted...
    bad = tmp_path / "bad-model"
    shutil.copytree(folder, bad)
    (bad / "model.safetensors").write_bytes(b"garbage")
    (bad / "config.json").write_text("{")
    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as s:
        bad_row = _ready_model(bad)
        s.add(bad_row)
        bad_id = bad_row.id
    proc = docpipe("models", "promote", bad_id)
    assert proc.returncode == 1 and "cannot be promoted" in proc.stderr and "config.json" in proc.stderr
    assert _live_id(stack) == live_id

    # ...and a live model whose folder broke afterwards fails the classify job, and is left live
    (folder / "model.safetensors").write_bytes(b"garbage")
    code, job = docpipe_json("classify", "--tenant", TENANT, "--task", "topic", "--wait")
    assert code == 1 and job["state"] == "failed" and "cannot serve" in job["error"]
    assert "the live model was left as it is" in job["error"]
    assert _live_id(stack) == live_id


def test_unknown_labels_are_an_error_for_search_filters(stack, live_model):
    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as s:
        assert label_filter(s, TENANT, "pos") == [{"term": {"label": "pos"}}]
        with pytest.raises(UnknownLabel, match="unknown label 'positive' for tenant t-ml-err; known labels: neg, pos"):
            label_filter(s, TENANT, "positive")
