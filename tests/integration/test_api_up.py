"""`docpipe up` starts the API beside the workers and prints its address and a working local key."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from cli.localstack.processes import pid_alive

pytestmark = pytest.mark.integration
KEY = re.compile(r"dpk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")


def docpipe(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCPIPE_")}
    proc = subprocess.run(
        [sys.executable, "-m", "cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"docpipe {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
    return proc


def get(url: str, key: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"X-API-Key": key} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_up_serves_the_api_with_a_local_key_and_down_stops_it(tmp_path):
    data = tmp_path / ".docpipe"
    try:
        printed = docpipe(tmp_path, "up").stderr
        url = re.search(r"API and dashboard: (http://127\.0\.0\.1:\d+)", printed).group(1)
        key = KEY.search(printed).group(0)
        key_file = data / "api-key"
        assert key_file.read_text().strip() == key
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        stack = json.loads((data / "stack.json").read_text())
        assert stack["api_url"] == url and url in stack["components"]["api"]["detail"]

        assert get(f"{url}/v1/jobs", key) == (200, {"items": [], "next_cursor": None})
        assert get(f"{url}/v1/jobs")[0] == 401
        assert get(f"{url}/healthz")[1]["status"] == "ok"

        again = docpipe(tmp_path, "up").stderr
        assert "already up" in again and key_file.read_text().strip() == key
        other = json.loads(docpipe(tmp_path, "keys", "create", "--tenant", "other", "--json").stdout)
        assert KEY.fullmatch(other["key"]) and get(f"{url}/v1/documents", other["key"])[0] == 200
        listed = json.loads(docpipe(tmp_path, "keys", "list", "--json").stdout)
        assert {k["tenant"] for k in listed} == {"default", "other"} and "key" not in listed[0]
        docpipe(tmp_path, "keys", "revoke", other["id"])
        assert get(f"{url}/v1/documents", other["key"])[0] == 401
    finally:
        subprocess.run(
            [sys.executable, "-m", "cli", "down"],
            cwd=tmp_path,
            capture_output=True,
            timeout=120,
            env={k: v for k, v in os.environ.items() if not k.startswith("DOCPIPE_")},
        )
    assert not pid_alive(stack["components"]["api"]["pid"])
