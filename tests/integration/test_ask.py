"""`docpipe ask` and `eval-ask` with a local causal LM (a tiny GPT-2 from a config, random weights) answered by the
real gpu worker: the question goes to the gpu queue, the answer streams back through Redis, and it is exactly what
the model writes for the prompt the CLI built; eval-ask sends all its questions in one batched task."""

from __future__ import annotations

import json
import uuid

import pytest
from typer.testing import CliRunner

from tests.answer_support import CORPUS, make_tiny_lm
from tests.conftest import settings_environment

VOLCANO_Q = "What is the most active volcano in Europe?"


@pytest.fixture(scope="module")
def ingested(stack, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ask-corpus")
    paths = []
    for name, text in CORPUS.items():
        (folder / name).write_text(text)
        paths.append(folder / name)
    tenant = f"t-ask-{uuid.uuid4().hex[:6]}"
    job = stack.run_job(paths, tenant)
    assert job.state == "succeeded" and job.done == 3
    return tenant


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return make_tiny_lm(tmp_path_factory.mktemp("tiny-lm"))


def docpipe(env: dict, *args: str):
    from cli.main import app

    with settings_environment(env):
        return CliRunner().invoke(app, list(args))


def test_the_gpu_worker_answers_with_the_local_model(ingested, tiny_lm, tmp_path):
    from pipeline.answer.local_lm import get_local_lm
    from pipeline.answer.passages import Passage
    from pipeline.answer.prompt import messages_for, passage_block

    env = {"DOCPIPE_GENERATOR_MODEL_PATH": str(tiny_lm), "DOCPIPE_GENERATOR_MAX_TOKENS": "8"}
    result = docpipe(env, "ask", VOLCANO_Q, "--tenant", ingested, "--k", "2", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["generator"] == "local" and out["answer"]
    assert out["passages"][0]["source"].endswith("volcanoes.txt") and len(out["passages"]) == 2
    passages = [Passage(**{k: v for k, v in p.items() if k != "page"}) for p in out["passages"]]
    messages = messages_for(VOLCANO_Q, [passage_block(p) for p in passages])
    assert out["answer"] == get_local_lm(tiny_lm, "cpu").complete_many([messages], 8)[0].strip()

    text = docpipe(env, "ask", VOLCANO_Q, "-t", ingested, "--k", "2")
    assert text.exit_code == 0, text.output
    assert text.stdout.startswith(out["answer"]) and "volcanoes.txt · chunk 0" in text.stdout

    qa = tmp_path / "qa.jsonl"
    rows = [
        {"question": VOLCANO_Q, "answer": "Mount Etna", "relevant": ["volcanoes.txt"]},
        {"question": "Which country produces the most coffee?", "answer": "Brazil", "relevant": ["coffee.txt"]},
    ]
    qa.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = docpipe(env, "eval-ask", str(qa), "-t", ingested, "--k", "2", "--json")
    assert report.exit_code == 0, report.output
    rep = json.loads(report.stdout)
    assert rep["generator"] == "local" and rep["questions"] == 2 and len(rep["results"]) == 2
    assert rep["results"][0]["answer"] == get_local_lm(tiny_lm, "cpu").complete_many([messages], 8)[0]
