"""`docpipe index verify` against real workers: chunks lost, tampered with or left over in the live index are
found (per tenant), repaired from SQL, and a forced reindex refuses to copy a live index that lost chunks."""

from __future__ import annotations

import json
import uuid

import pytest
from typer.testing import CliRunner

from pipeline.index import text_hash
from tests.fixtures import article

pytestmark = pytest.mark.integration
RUN = uuid.uuid4().hex[:6]
A, B = f"t-verify-a-{RUN}", f"t-verify-b-{RUN}"


def _cli(*args: str):
    from cli.main import app

    return CliRunner().invoke(app, ["index", "verify", *args])


def _verify(*args: str) -> tuple[int, dict]:
    result = _cli(*args, "--json")
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def _live(stack) -> str:
    from pipeline.reindex import live_row
    from pipeline.store.db import session_scope

    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as s:
        return live_row(s, stack.settings().index_prefix).name


def _chunks(es, index: str, tenant: str) -> dict[str, dict]:
    es.indices.refresh(index=index)
    hits = es.search(index=index, query={"term": {"tenant": tenant}}, size=1000, sort=[{"chunk_id": "asc"}])
    return {h["_id"]: h["_source"] for h in hits["hits"]["hits"]}


@pytest.fixture(scope="module")
def corpus(stack, tmp_path_factory):
    for tenant, seeds in ((A, range(700, 718)), (B, range(720, 723))):
        folder = tmp_path_factory.mktemp(tenant)
        for seed in seeds:
            (folder / f"doc{seed}.txt").write_text(article(seed, sentences=8))
        job = stack.run_job([folder], tenant)
        assert job.state == "succeeded", job.error
    return _live(stack)


def test_verify_reports_exactly_the_drift_and_repair_fixes_it(stack, corpus):
    es, index = stack.es(), corpus
    assert _verify("--tenant", A)[0] == 0  # a fresh ingest has no drift
    before = _chunks(es, index, A)
    ids = sorted(before)
    lost, tampered = ids[1:4], ids[6]
    for cid in lost:
        es.delete(index=index, id=cid)
    es.update(index=index, id=tampered, doc={"text": "tampered text", "text_hash": text_hash("tampered text")})
    stray = f"{'f' * 32}-00000"  # a chunk of a document SQL never had
    es.index(index=index, id=stray, document={**before[ids[0]], "doc_id": "f" * 32, "chunk_id": stray})
    es.indices.refresh(index=index)

    code, found = _verify("--tenant", A)
    assert code == 1
    assert (found["missing"], found["stale"], found["extra"]) == (3, 1, 1)
    assert found["samples"] == {"missing": lost, "stale": [tampered], "extra": [stray]}
    assert found["sql_chunks"] == len(before)
    assert _verify("--tenant", B)[0] == 0  # the other tenant's chunks are intact

    code, repaired = _verify("--tenant", A, "--repair")
    assert code == 0, repaired
    assert repaired["repaired"]["reindexed"] == 4 and repaired["repaired"]["deleted"] == 1
    assert repaired["remaining"] == 0
    assert _verify("--tenant", A)[0] == 0  # and a second look agrees
    after = _chunks(es, index, A)
    assert sorted(after) == ids
    assert after[tampered]["text"] == before[tampered]["text"]
    for cid in [*lost, tampered]:  # re-embedded from SQL's text with the live model
        assert max(abs(x - y) for x, y in zip(after[cid]["embedding"], before[cid]["embedding"])) < 1e-4


def test_verify_shows_as_a_job_and_in_text(stack, corpus):
    result = _cli("--tenant", B)
    assert result.exit_code == 0, result.output
    assert "missing 0, extra 0, stale 0" in result.output


def test_forced_reindex_refuses_to_copy_a_live_index_that_lost_chunks(stack, corpus):
    from pipeline.reindex import create_reindex_job
    from pipeline.store.db import session_scope
    from workers.app import configure
    from workers.tasks_reindex import reindex

    es, index = stack.es(), corpus
    ids = sorted(_chunks(es, index, A))
    for cid in ids[:2]:
        es.delete(index=index, id=cid)
    es.indices.refresh(index=index)
    configure(stack.settings())
    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as s:
        job_id = create_reindex_job(s, {"action": "build", "force": True, "reason": "verify test"}).id
    reindex.delay(job_id)
    job = stack.wait(job_id)
    assert job.state == "failed"
    assert "refused to swap" in job.error and "docpipe index verify --repair" in job.error, job.error
    assert _live(stack) == index  # nothing swapped
    assert sorted(es.indices.get_alias(name=f"{stack.settings().index_prefix}-read").body) == [index]

    code, repaired = _verify("--tenant", A, "--repair")  # leaves the shared stack as it found it
    assert code == 0 and repaired["repaired"]["reindexed"] == 2, repaired


def test_api_verify_sees_the_tenant_drift_and_repairs_it_in_a_job(stack, corpus):
    from tests.integration.api_support import api_client, key_for, wait_job

    es, index = stack.es(), corpus
    lost = sorted(_chunks(es, index, B))[0]
    es.delete(index=index, id=lost)
    es.indices.refresh(index=index)
    client, key = api_client(stack), key_for(stack, B)

    r = client.post("/v1/index/verify", headers=key)
    assert r.status_code == 200, r.text
    found = r.json()
    assert (found["tenant"], found["missing"], found["extra"], found["stale"]) == (B, 1, 0, 0)
    assert found["samples"]["missing"] == [lost]
    assert client.post("/v1/index/verify", headers=key_for(stack, A)).json()["drift"] == 0  # only B's chunks

    r = client.post("/v1/index/verify", params={"repair": "true"}, headers=key)
    assert r.status_code == 202, r.text
    assert wait_job(client, key, r.json()["job_id"])["state"] == "succeeded"
    assert client.post("/v1/index/verify", headers=key).json()["drift"] == 0
    assert lost in _chunks(es, index, B)
    assert client.post("/v1/index/verify").status_code == 401
