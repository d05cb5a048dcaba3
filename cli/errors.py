"""Every `docpipe` error is one line that says what is wrong and what to do.

Exit codes: 2 when docpipe refused the input (a bad option, an unknown choice, a search out of bounds), 1 when
the environment is at fault (a service down, a certificate not trusted, a job that failed). DOCPIPE_DEBUG=1 keeps
the traceback of an error explained here.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

# Typer carries its own copy of click: its exceptions, not those of an installed click, are the ones raised.
from typer._click.exceptions import NoArgsIsHelpError, UsageError
from typer.core import TyperGroup

REFUSED = 2
FAILED = 1
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """The text with control characters (other than newline and tab) written as escapes: `\\x1b`, `\\r`.

    A file name, a feed's title or an error naming either is data; printed raw, its ESC sequences would recolour or
    rewrite the terminal and its carriage returns overwrite the line.
    """
    return _CONTROLS.sub(lambda m: repr(m.group())[1:-1], text)


def one_line(name: str) -> str:
    """A name (a source, a file) on one line: its newlines and tabs escaped too, as in a shell's `ls -b`."""
    return printable(name).replace("\n", "\\n").replace("\t", "\\t")


class DataConsole(Console):
    """A rich console for output that carries data: no markup, no emoji codes (a document's `[/etc]` or `:fire:`
    is printed as written, and can neither crash the print nor restyle it), control characters escaped."""

    def __init__(self, **kwargs) -> None:
        super().__init__(markup=False, emoji=False, **kwargs)

    def render_str(self, text: str, **kwargs):  # every str a print or a table cell renders comes through here
        return super().render_str(printable(text), **kwargs)


_stderr = DataConsole(stderr=True)


def say_error(message: str) -> None:
    """Print `error: message` on stderr as one line, whatever the terminal's width; never read as markup."""
    said = printable(" ".join(message.split()))
    _stderr.print(Text.assemble(("error: ", "bold red"), said), soft_wrap=True, highlight=False)


def say_warning(message: str) -> None:
    """`warning: message` on stderr as one line, as say_error prints its errors."""
    _stderr.print(Text.assemble(("warning: ", "bold yellow"), printable(message)), soft_wrap=True, highlight=False)


def debugging() -> bool:
    return os.environ.get("DOCPIPE_DEBUG", "").strip().lower() in ("1", "true", "yes")


def _caused_by(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> BaseException | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kinds):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _elasticsearch_unreachable() -> str:
    from pipeline.config import get_settings
    from pipeline.services import endpoints, without_credentials

    settings = get_settings()
    url = endpoints(settings).elasticsearch_url
    if not url:
        return "no Elasticsearch configured: start the stack with `docpipe up` or set DOCPIPE_ELASTICSEARCH_URL"
    if settings.elasticsearch_url:
        return f"cannot reach Elasticsearch at {without_credentials(url)}: is it running? (DOCPIPE_ELASTICSEARCH_URL)"
    return f"cannot reach Elasticsearch at {url}: start the stack with `docpipe up`"


def _broker_unreachable() -> str:
    from pipeline.config import get_settings
    from pipeline.services import endpoints, without_credentials

    url = endpoints(get_settings()).redis_url
    where = f" at {without_credentials(url)}" if url else ""
    return f"cannot reach the broker{where}: start the stack with `docpipe up`"


def explain(exc: BaseException) -> tuple[str, int] | None:
    """(one line, exit code) for an error a user can act on; None for a bug (its traceback is kept)."""
    from pipeline.errors import ConfigError, PermanentError, RetryableError

    if isinstance(exc, UsageError):
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        # typer checks choices with pydantic, whose messages start with its own category
        return f"{exc.format_message().replace('Value error, ', '')}{where}", REFUSED
    if isinstance(exc, ConfigError):
        return str(exc), FAILED
    if isinstance(exc, PermanentError):
        return str(exc), REFUSED
    # imported only now: a refusal above (a bad option, an API's 4xx) is explained without these clients' imports
    from elastic_transport import ConnectionError as ElasticConnectionError
    from sqlalchemy.exc import OperationalError

    if _caused_by(exc, (ElasticConnectionError,)) is not None:
        return _elasticsearch_unreachable(), FAILED
    if _is_broker_down(exc):
        return _broker_unreachable(), FAILED
    if isinstance(exc, RetryableError):
        return f"{exc}; try again shortly", FAILED
    if isinstance(exc, OperationalError):
        detail = str(exc.orig).splitlines()[0] if exc.orig is not None else type(exc).__name__
        return f"the database refused ({detail}): check DOCPIPE_DATABASE_URL or run `docpipe db upgrade`", FAILED
    return None


def _is_broker_down(exc: BaseException) -> bool:
    kinds: list[type[BaseException]] = []
    try:
        from kombu.exceptions import OperationalError as KombuOperationalError

        kinds.append(KombuOperationalError)
    except ImportError:  # pragma: no cover - kombu comes with celery
        pass
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError

        kinds.append(RedisConnectionError)
    except ImportError:  # pragma: no cover
        pass
    return bool(kinds) and _caused_by(exc, tuple(kinds)) is not None


class OneLineErrors(TyperGroup):
    """The top-level group: what escapes a command is explained in one line and an exit code."""

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = result if isinstance(result, int) else 0
        except NoArgsIsHelpError as exc:
            exc.show()  # `docpipe` (or a noun) alone prints its help
            code = exc.exit_code
        except typer.Abort:
            say_error("aborted")
            code = FAILED
        except Exception as exc:  # noqa: BLE001 - each is explained or re-raised below
            explained = explain(exc)
            if explained is None or debugging():
                raise
            say_error(explained[0])
            code = explained[1]
        if standalone_mode:
            sys.exit(code)
        return code
