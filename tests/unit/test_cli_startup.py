"""A CLI search is a thin client: `docpipe search` against an API loads no model, search client or database layer
before it sends its request, and the local stack's key file is used as it is (checked and replaced only when the
API refuses it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli import remote
from tests.unit.api_support import Api

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "sentence_transformers", "sqlalchemy", "elasticsearch", "elastic_transport")
HEAVY += ("celery", "kombu", "numpy", "pandas", "pipeline.store", "pipeline.index", "pipeline.retrieve")
# pydantic (the settings, and Typer 0.29's parameter coercion: why pyproject keeps Typer below 0.29) and rich's
# tables and progress bars, which a search does not print
HEAVY += ("pydantic", "pydantic_settings", "pipeline.config", "rich.table", "rich.progress")

# runs `docpipe search` in a fresh interpreter; the API's answer comes from a transport that records which
# modules the process had loaded when the request left
SEARCH = r"""
import json, sys
import httpx2
from typer.testing import CliRunner
from cli import remote
from cli.main import app

seen = {}

def answer(request):
    seen["params"] = dict(request.url.params)
    seen["modules"] = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY_ROOTS or m in HEAVY)
    hit = {"rank": 1, "name": "a.txt", "ordinal": 0, "score": 0.5, "snippet": "oil prices rose"}
    return httpx2.Response(200, json={"hits": [hit], "took": 3})

HEAVY = set(sys.argv[1].split(","))
HEAVY_ROOTS = {m for m in HEAVY if "." not in m}
client = httpx2.Client(base_url="http://api.test", transport=httpx2.MockTransport(answer))
remote.configured = lambda settings=None: remote.RemoteApi("http://api.test", "dpk_x", client)
result = CliRunner().invoke(app, ["search", "oil prices", "--mode", "hybrid", "--k", "3", "--json"])
print(json.dumps({"code": result.exit_code, "output": result.stdout, **seen}))
"""


def test_a_search_through_the_api_sends_its_request_before_any_heavy_import(tmp_path):
    env = {**os.environ, "DOCPIPE_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-c", SEARCH, ",".join(HEAVY)], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["code"] == 0, report["output"]
    assert report["params"] == {"q": "oil prices", "mode": "hybrid", "k": "3"}
    assert report["modules"] == []
    assert json.loads(report["output"])[0]["name"] == "a.txt"


# the same search of the local stack: stack.json and the key file found from DOCPIPE_DATA_DIR alone
LOCAL = SEARCH.replace(
    'remote.configured = lambda settings=None: remote.RemoteApi("http://api.test", "dpk_x", client)',
    """import os
from pathlib import Path
data = Path(os.environ["DOCPIPE_DATA_DIR"])
data.mkdir(parents=True)
stack = {"api_url": "http://api.test", "components": {"api": {"pid": os.getpid()}}}
(data / "stack.json").write_text(json.dumps(stack))
(data / "api-key").write_text("dpk_local\\n")
real_client = httpx2.Client
httpx2.Client = lambda **kw: real_client(**{**kw, "transport": httpx2.MockTransport(answer)})
""",
).replace(
    'seen["params"] = dict(request.url.params)',
    'seen["params"] = dict(request.url.params, key=request.headers["x-api-key"])',
)


def test_a_search_of_the_local_stack_finds_it_without_loading_the_settings(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("DOCPIPE_API_")}
    env.update(DOCPIPE_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(ROOT))
    run = subprocess.run(
        [sys.executable, "-c", LOCAL, ",".join(HEAVY)], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["code"] == 0, report["output"]
    assert report["params"] == {"q": "oil prices", "mode": "hybrid", "k": "3", "key": "dpk_local"}
    assert report["modules"] == []


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"DOCPIPE_DATA_DIR": "/srv/docpipe"},
        {"docpipe_data_dir": "rel/dir", "DOCPIPE_API_URL": "http://h:1", "DOCPIPE_API_KEY": "dpk_a"},
        {"DOCPIPE_API_URL": "https://api.example", "DOCPIPE_API_KEY": ""},
        {"DOCPIPE_DATA_DIR": "", "DOCPIPE_API_KEY": "dpk_b"},
    ],
)
def test_the_quick_reading_of_the_environment_is_what_settings_read(environ, tmp_path, monkeypatch):
    from pipeline.config import Settings, get_settings

    for name in list(os.environ):
        if name.upper().startswith("DOCPIPE_"):
            monkeypatch.delenv(name)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    quick = remote.Whereabouts.from_environment()
    assert quick == remote.Whereabouts.of(Settings())
    (tmp_path / ".env").write_text("DOCPIPE_DATA_DIR=from-dotenv\n")
    assert remote.Whereabouts.from_environment() is None  # a .env file: Settings decide
    if "DOCPIPE_DATA_DIR" not in {k.upper() for k in environ}:
        get_settings.cache_clear()
        try:
            assert remote.Whereabouts.of().data_dir == Path("from-dotenv")
        finally:
            get_settings.cache_clear()


def _local_stack(api: Api, tenant: str, key: str | None) -> None:
    api.settings.data_dir.mkdir(parents=True, exist_ok=True)
    # the API component is "alive" (this process), so nothing is started
    stack = {"api_url": "http://testserver", "components": {"api": {"pid": os.getpid()}}}
    api.settings.stack_file.write_text(json.dumps(stack))
    if key is not None:
        path = remote._key_path(api.settings.data_dir, tenant)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(key + "\n")


def test_the_local_key_file_is_trusted_and_a_refused_key_is_replaced_once(tmp_path):
    from pipeline.store import apikeys

    api = Api(tmp_path)
    stale = "dpk_000000000000_" + "x" * 43  # the shape of a key, in no database
    _local_stack(api, "acme", stale)
    found = remote.local_api("acme", api.settings)
    assert found is not None and found.headers == {"X-API-Key": stale}  # read, not checked
    found.http = api.client
    assert found.get("/v1/jobs")["items"] == []  # refused once, renewed, asked again
    renewed = remote._key_path(api.settings.data_dir, "acme").read_text().strip()
    assert renewed != stale and found.headers == {"X-API-Key": renewed}
    with api.session() as s:
        assert apikeys.authenticate(s, renewed) == "acme"
    again = remote.local_api("acme", api.settings)
    assert again is not None and again.headers == {"X-API-Key": renewed}


def test_a_key_refused_after_its_renewal_is_one_line(tmp_path):
    api = Api(tmp_path)
    _local_stack(api, "acme", None)
    found = remote.local_api("acme", api.settings)  # no key file: one is made (and checked) now
    assert found is not None and found.renew_key is None
    found.http = api.client
    assert found.get("/v1/jobs")["items"] == []
    found.headers = {"X-API-Key": "dpk_000000000000_" + "y" * 43}
    try:
        found.get("/v1/jobs")
    except remote.ApiRefused as exc:
        assert exc.status == 401 and "check DOCPIPE_API_KEY" in str(exc)
    else:
        raise AssertionError("a refused key without a way to renew it must be refused")
