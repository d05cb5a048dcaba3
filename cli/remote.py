"""The CLI's client of a docpipe API: for users without database access, and for searches of the local stack.

With DOCPIPE_API_URL (and DOCPIPE_API_KEY) set, the commands that have a remote form (cli/remote_commands.py)
talk to that API only: no database, no shared filesystem, no broker. The key decides the tenant. Without it,
`docpipe search` asks the API of the local stack (`docpipe up` records its URL in stack.json) with a key of the
tenant asked for, minted locally, so the CLI process never loads the encoder.

Every refusal of the API becomes one line: its `message`, with the HTTP status.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2

from pipeline.errors import PermanentError, ServiceUnavailable
from pipeline.paths import DATA_DIR, api_key_file, stack_file

if TYPE_CHECKING:
    from pipeline.config import Settings

JOB_ID = re.compile(r"[0-9a-f]{32}")
FINAL = ("succeeded", "partial", "failed", "cancelled")


class ApiRefused(PermanentError):
    """The API answered 4xx: the request is wrong (the message says what to do)."""

    def __init__(self, message: str, status: int = 400, code: str = ""):
        super().__init__(message, status, code)
        self.status, self.code = status, code


class ApiUnavailable(ServiceUnavailable):
    """The API cannot be reached, or answered 5xx."""


class RemoteApi:
    """A docpipe API at `url`, called with `key`. `client` is an httpx2.Client to send through (tests pass the
    app's TestClient); by default one of its own. renew_key: where a fresh key comes from when the API refuses
    this one (401), for one more try (the local stack's key file, read without checking it in the database)."""

    def __init__(
        self,
        url: str,
        key: str | None,
        client: httpx2.Client | None = None,
        timeout: float = 60.0,
        renew_key: Callable[[], str] | None = None,
    ):
        self.url = url.rstrip("/")
        self.headers = {"X-API-Key": key} if key else {}
        # a plain-http URL (the local stack's) needs no certificates: loading them cost a CLI search ~25 ms
        verify = not self.url.startswith("http://")
        self.http = client or httpx2.Client(base_url=self.url, timeout=timeout, verify=verify)
        self.where = self.url or "the API"
        self.renew_key = renew_key

    # --- plumbing -------------------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> httpx2.Response:
        extra = kwargs.pop("headers", {})
        resp = self._send(method, path, {**self.headers, **extra}, kwargs)
        if resp.status_code == 401 and self.renew_key is not None:
            renew, self.renew_key = self.renew_key, None
            self.headers = {"X-API-Key": renew()}
            resp = self._send(method, path, {**self.headers, **extra}, kwargs)
        if resp.status_code < 400:
            return resp
        body = _json_or_none(resp)
        message = (body or {}).get("message") if isinstance(body, dict) else None
        message = message or f"{resp.reason_phrase or 'error'}: {resp.text[:200]}"
        said = f"{message} (HTTP {resp.status_code} from {self.where})"
        if resp.status_code == 401:
            said = f"{message} (HTTP 401: check DOCPIPE_API_KEY)"
        if resp.status_code >= 500:
            raise ApiUnavailable(said)
        raise ApiRefused(said, resp.status_code, (body or {}).get("error", "") if isinstance(body, dict) else "")

    def _send(self, method: str, path: str, headers: dict, kwargs: dict) -> httpx2.Response:
        try:
            return self.http.request(method, path, headers=headers, **kwargs)
        except httpx2.TransportError as exc:
            raise ApiUnavailable(f"cannot reach the docpipe API at {self.where} ({type(exc).__name__})") from None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=_clean(params)).json()

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        resp = self.request("POST", path, json=json, **kwargs)
        return resp.json() if resp.content else None

    def delete(self, path: str, **params: Any) -> Any:
        resp = self.request("DELETE", path, params=_clean(params))
        return resp.json() if resp.content else None

    def items(self, path: str, limit: int | None = None, **params: Any) -> Iterator[dict]:
        """Every item of a paged list (following `next_cursor`), at most `limit`."""
        cursor, seen = None, 0
        while True:
            page = self.get(path, limit=min(500, limit - seen) if limit else 500, cursor=cursor, **params)
            for item in page["items"]:
                yield item
                seen += 1
                if limit and seen >= limit:
                    return
            cursor = page.get("next_cursor")
            if not cursor:
                return

    # --- jobs -----------------------------------------------------------------------------------------

    def job_id(self, ref: str) -> str:
        """A job id from an id or the prefix `docpipe jobs` shows (looked up among the latest 1,000 jobs)."""
        ref = ref.strip().lower()
        if JOB_ID.fullmatch(ref):
            return ref
        found = [j["id"] for j in self.items("/v1/jobs", limit=1000) if j["id"].startswith(ref)] if ref else []
        if len(found) != 1:
            raise ApiRefused(f"no job {ref} (or the prefix is ambiguous); see `docpipe jobs`", 404)
        return found[0]

    def job(self, ref: str) -> dict:
        return self.get(f"/v1/jobs/{self.job_id(ref)}")

    def wait(self, job_id: str, on_poll: Callable[[dict], None] | None = None, every: float = 0.5) -> dict:
        while True:
            rec = self.get(f"/v1/jobs/{job_id}")
            if on_poll is not None:
                on_poll(rec)
            if rec["state"] in FINAL:
                return rec
            time.sleep(every)

    def upload(self, files: list[Path]) -> dict:
        """One multipart upload of `files` (their names are the documents' identities): the ingest job."""
        handles = [open(p, "rb") for p in files]  # noqa: SIM115 - closed below, after the request streamed them
        try:
            parts = [("files", (p.name, fh, "application/octet-stream")) for p, fh in zip(files, handles, strict=True)]
            return self.post("/v1/documents", files=parts)
        finally:
            for fh in handles:
                fh.close()


def _clean(params: dict) -> dict:
    return {k: v for k, v in params.items() if v is not None}


def _json_or_none(resp: httpx2.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


@dataclass(frozen=True)
class Whereabouts:
    """What the CLI needs to find an API: DOCPIPE_API_URL and _KEY, and the data dir (the local stack's
    stack.json and key files)."""

    data_dir: Path
    api_url: str = ""
    api_key: str | None = None

    @classmethod
    def of(cls, settings: Settings | None = None) -> Whereabouts:
        """From `settings`; with none, from the environment alone where that says all (no .env file), so that a
        search of a running stack never imports pydantic (about 130 ms of a CLI start on this machine)."""
        if settings is None:
            quick = cls.from_environment()
            if quick is not None:
                return quick
            from pipeline.config import get_settings

            settings = get_settings()
        key = settings.api.key.get_secret_value() if settings.api.key else None
        return cls(settings.data_dir, settings.api.url, key)

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None, cwd: Path | None = None) -> Whereabouts | None:
        """The three as Settings reads them (variable names in any case), or None when a .env file is present:
        Settings reads that too, so it decides."""
        if ((cwd or Path.cwd()) / ".env").exists():
            return None
        env = {k.upper(): v for k, v in (os.environ if environ is None else environ).items()}
        data_dir = Path(env["DOCPIPE_DATA_DIR"]) if "DOCPIPE_DATA_DIR" in env else DATA_DIR
        return cls(data_dir, env.get("DOCPIPE_API_URL", ""), env.get("DOCPIPE_API_KEY") or None)


def configured(settings: Settings | None = None) -> RemoteApi | None:
    """The API that DOCPIPE_API_URL names, or None: then the CLI works on the database itself."""
    where = Whereabouts.of(settings)
    if not where.api_url:
        return None
    if not where.api_key:
        raise ApiRefused("DOCPIPE_API_URL is set but DOCPIPE_API_KEY is not: set the key the API gave you", 2)
    return RemoteApi(where.api_url, where.api_key)


# --- the local stack's API (for searches without DOCPIPE_API_URL) -----------------------------------------


def local_api(tenant: str, settings: Settings | None = None) -> RemoteApi | None:
    """The API of the local stack with a key of `tenant`, when `docpipe up` started one here (healed if part of
    the stack died); None when none was ever started here or the services are configured elsewhere: then the
    CLI searches the index itself."""
    from pipeline.hosts import pid_alive

    data_dir = Whereabouts.of(settings).data_dir
    stack = _read_stack(data_dir)
    api = stack.get("components", {}).get("api")
    if api is None or not stack.get("api_url"):
        return None
    if not pid_alive(api["pid"]):
        from cli.common import ensure_stack

        ensure_stack()  # `docpipe up` heals: only what died starts again, on its old port
        stack = _read_stack(data_dir)
    # the key file is trusted as it is: checking it in the database cost every search SQLAlchemy's import and a
    # connection; a key the API refuses (revoked, a database made anew) is checked and replaced, then tried again
    path = _key_path(data_dir, tenant)
    stored = path.read_text().strip() if path.exists() else ""
    if stored:
        return RemoteApi(stack["api_url"], stored, renew_key=lambda: tenant_key(settings, tenant))
    return RemoteApi(stack["api_url"], tenant_key(settings, tenant))


def _read_stack(data_dir: Path) -> dict:
    # pipeline.services.read_stack, without importing the Elasticsearch transport that module needs for the rest
    try:
        return json.loads(stack_file(data_dir).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _key_path(data_dir: Path, tenant: str) -> Path:
    import hashlib

    from cli.localstack.apiserver import LOCAL_TENANT

    if tenant == LOCAL_TENANT:
        return api_key_file(data_dir)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", tenant)[:64] + "-" + hashlib.sha256(tenant.encode()).hexdigest()[:8]
    return api_key_file(data_dir).with_name("api-keys") / name


def tenant_key(settings: Settings | None, tenant: str) -> str:
    """A key of `tenant` for the local API, made once and kept under the data dir (mode 0600)."""
    from cli.localstack.apiserver import LOCAL_TENANT, ensure_local_key
    from pipeline.config import get_settings

    settings = settings or get_settings()
    if tenant == LOCAL_TENANT:
        return ensure_local_key(settings, settings.sql_url)
    from pipeline.store import apikeys as keys
    from pipeline.store.db import session_scope

    path = _key_path(settings.data_dir, tenant)
    if path.exists():
        key = path.read_text().strip()
        with session_scope(settings.sql_url) as session:
            if keys.authenticate(session, key) == tenant:
                return key
    with session_scope(settings.sql_url) as session:
        _, key = keys.create_key(session, tenant, name="local CLI searches")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    os.replace(tmp, path)
    return key
