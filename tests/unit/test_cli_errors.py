"""Every `docpipe` error is one line saying what is wrong and what to do; refused input exits 2; the CLI and the
API refuse a search with the same limits and the same words."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.choices import Augment, JobStatus, SearchMode
from cli.main import app
from pipeline.config import get_settings
from pipeline.errors import ServiceUnavailable
from pipeline.infer.artefact import AUGMENTS
from pipeline.retrieve import MODES
from pipeline.store.models import JobState
from tests.unit.api_support import Api

NO_DATABASE = "error: no database yet: run `docpipe up` or `docpipe db upgrade`"


def docpipe(data_dir: Path, *args: str, **env: str):
    """`docpipe ARGS` in-process, with only the DOCPIPE_* variables given (any the test session set are removed)."""
    clean: dict[str, str | None] = {k: None for k in os.environ if k.startswith("DOCPIPE_")}
    clean.update({"DOCPIPE_DATA_DIR": str(data_dir), **env})
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(app, list(args), env=clean, prog_name="docpipe")
    finally:
        get_settings.cache_clear()


def lines(result) -> list[str]:
    return result.output.strip().splitlines()


def migrated(data_dir: Path) -> Path:
    from migrations.runner import upgrade

    data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(f"sqlite:///{data_dir / 'docpipe.db'}")
    return data_dir


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "args", [["jobs"], ["job", "abc123"], ["search", "rates", "--mode", "bm25"], ["models", "list"], ["keys", "list"]]
)
def test_read_commands_on_a_fresh_data_dir_say_there_is_no_database_yet(tmp_path, args):
    result = docpipe(tmp_path / "fresh", *args)
    assert (result.exit_code, lines(result)) == (1, [NO_DATABASE])
    assert not (tmp_path / "fresh" / "docpipe.db").exists()  # reading created nothing


def test_an_unknown_status_is_refused_in_one_line_naming_the_choices_which_help_lists_too(tmp_path):
    result = docpipe(tmp_path, "jobs", "--status", "bogus")
    assert result.exit_code == 2
    [line] = lines(result)
    assert line.startswith("error: Invalid value for '--status': 'bogus' is not one of 'queued', 'running'")
    assert line.endswith("(see `docpipe jobs --help`)")
    wide = {"COLUMNS": "200"}  # help on one line per option
    assert "queued|running|succeeded|partial|failed|cancelled" in docpipe(tmp_path, "jobs", "--help", **wide).output
    assert "bm25|knn|hybrid" in docpipe(tmp_path, "search", "--help", **wide).output


def test_an_unknown_command_or_option_is_one_line_and_exit_2(tmp_path):
    for args in (["serach", "x"], ["jobs", "--bogus"], ["search", "x", "--mode", "fuzzy"]):
        result = docpipe(tmp_path, *args)
        assert result.exit_code == 2 and len(lines(result)) == 1 and lines(result)[0].startswith("error: "), args


@pytest.mark.parametrize("k", [0, -1, 101, 1_000_000])
def test_k_out_of_bounds_is_refused_before_anything_runs(tmp_path, k):
    expected = f"error: k must be between 1 and 100 (DOCPIPE_API_MAX_K), got {k}"
    for args in (["search", "rates", f"--k={k}"], ["eval-search", "queries.jsonl", f"--k={k}"]):
        result = docpipe(tmp_path / "fresh", *args)
        assert (result.exit_code, lines(result)) == (2, [expected]), args


def test_the_limit_is_the_api_setting_and_modes_are_checked_by_the_same_function(tmp_path):
    wider = docpipe(tmp_path / "fresh", "search", "rates", "--k=500", "--mode", "bm25", DOCPIPE_API_MAX_K="500")
    assert (wider.exit_code, lines(wider)) == (1, [NO_DATABASE])  # k passed; the missing database stops it
    bad = docpipe(tmp_path / "fresh", "eval-search", "queries.jsonl", "--modes", "bm25,fuzzy")
    assert (bad.exit_code, lines(bad)) == (2, ["error: unknown search mode 'fuzzy': use one of bm25, knn, hybrid"])


def test_search_with_the_stack_down_says_how_to_start_it(tmp_path):
    data = migrated(tmp_path / "data")
    none = docpipe(data, "search", "rates", "--mode", "bm25")
    assert (none.exit_code, lines(none)) == (
        1,
        ["error: no Elasticsearch configured: start the stack with `docpipe up` or set DOCPIPE_ELASTICSEARCH_URL"],
    )
    # a stack that `docpipe up` recorded and that has since died
    url = f"http://127.0.0.1:{closed_port()}"
    (data / "stack.json").write_text(json.dumps({"elasticsearch_url": url, "components": {}}))
    down = docpipe(data, "search", "rates", "--mode", "bm25")
    assert (down.exit_code, lines(down)) == (
        1,
        [f"error: cannot reach Elasticsearch at {url}: start the stack with `docpipe up`"],
    )
    configured = docpipe(
        data, "search", "rates", "--mode", "bm25", DOCPIPE_ELASTICSEARCH_URL=f"http://u:secret@{url[7:]}"
    )
    assert configured.exit_code == 1 and "secret" not in configured.output
    assert lines(configured) == [
        f"error: cannot reach Elasticsearch at {url}: is it running? (DOCPIPE_ELASTICSEARCH_URL)"
    ]
    debug = docpipe(data, "search", "rates", "--mode", "bm25", DOCPIPE_DEBUG="1")
    assert isinstance(debug.exception, ServiceUnavailable)  # the traceback is kept when asked for


def test_a_read_command_on_a_migrated_database_runs(tmp_path):
    data = migrated(tmp_path / "data")
    result = docpipe(data, "jobs", "--status", "failed", "--json")
    assert (result.exit_code, json.loads(result.output)) == (0, [])


def test_the_cli_choices_are_the_domain_constants():
    assert tuple(JobStatus) == JobState.ALL
    assert tuple(SearchMode) == MODES
    assert tuple(Augment) == AUGMENTS


@pytest.mark.parametrize("k", [0, -1, 500, 1_000_000])
def test_the_api_refuses_k_with_the_cli_message(tmp_path, k):
    api = Api(tmp_path)
    r = api.client.get("/v1/search", params={"q": "rates", "mode": "bm25", "k": k}, headers=api.key("acme"))
    cli = docpipe(tmp_path / "fresh", "search", "rates", f"--k={k}")
    assert r.status_code == 422 and cli.exit_code == 2
    assert (
        f"error: {r.json()['message']}"
        == lines(cli)[0]
        == f"error: k must be between 1 and 100 (DOCPIPE_API_MAX_K), got {k}"
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", "the query is empty: give words to search for"),
        ("  \t\n ", "the query is empty: give words to search for"),
        ("x" * 1001, "the query has 1001 characters: search with at most 1000"),
        ("rates\x00", "the query contains a NUL character: remove it"),
    ],
)
def test_a_query_with_nothing_to_search_is_refused_alike_by_the_api_and_the_cli(tmp_path, query, expected):
    api = Api(tmp_path)
    r = api.client.get("/v1/search", params={"q": query, "mode": "hybrid"}, headers=api.key("acme"))
    cli = docpipe(tmp_path / "fresh", "search", query, "--mode", "knn")
    assert (r.status_code, r.json()["message"]) == (422, expected)
    assert (cli.exit_code, lines(cli)) == (2, [f"error: {expected}"])  # before any model or database


def test_a_mistyped_setting_is_named_before_the_command_answers(tmp_path):
    from cli import common

    common._name_unknown_variables.cache_clear()  # once per process: a test before may have spent it
    result = docpipe(migrated(tmp_path / "d"), "jobs", "--json", DOCPIPE_ES_URL="http://es:9200")
    assert result.exit_code == 0
    assert lines(result)[0] == (
        "warning: DOCPIPE_ES_URL is not a docpipe setting and is ignored: did you mean DOCPIPE_ELASTICSEARCH_URL?"
    )
    assert json.loads("\n".join(lines(result)[1:])) == []


def test_a_file_whose_name_is_not_utf8_is_refused_before_anything_runs(tmp_path):
    bad = Path(os.fsdecode(bytes(tmp_path) + b"/r\xe9sum\xe9.txt"))  # Latin-1 bytes, as an old archive leaves them
    bad.write_text("a text about harbour cranes")
    result = docpipe(tmp_path / "data", "ingest", str(bad))
    assert result.exit_code == 2
    assert lines(result) == [
        f"error: {tmp_path}/r\ufffdsum\ufffd.txt: file name is not UTF-8 (another encoding's bytes): rename it "
        "(e.g. with convmv) and ingest it again"
    ]
    assert not (tmp_path / "data" / "docpipe.db").exists()
