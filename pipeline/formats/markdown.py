"""Markdown files: front matter (YAML between `---` lines, as Jekyll, Hugo, MkDocs, Docusaurus and Obsidian write it,
or TOML between `+++` lines) gives the title, date and metadata and leaves the text; else the first `#` heading is the
title.

Front matter's fields have a record's roles (pipeline.formats.records): `title` (or `headline`, `subject`), a date
field (`date`, `published`, ...), and the rest metadata, so `tags: [a, b]` is filtered with `--where tags=a`. A file
that opens with a thematic break (`---`) and whose lines up to the next one are not a mapping keeps them as text, as
does front matter that does not parse: nothing of a file is lost to a guess.

PyYAML (safe loader) and tomllib, not python-frontmatter: its parse drops the lines between two thematic breaks when
they are not a mapping, strips the text, and its TOML needs the unmaintained `toml` package.
"""

from __future__ import annotations

import re
import tomllib
from datetime import date, datetime, time

import yaml

from pipeline.formats.records import described, names_of
from pipeline.types import RawDocument

_CLOSING = {"---": ("---", "..."), "+++": ("+++",)}
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TITLE = re.compile(r"#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*")
_FENCE = re.compile(r"[ \t]{0,3}(```|~~~)")


def read_markdown(text: str, source: str) -> RawDocument:
    fields, body = front_matter(text)
    title, published, metadata = described(fields, names_of(fields), set()) if fields else (None, None, {})
    return RawDocument(
        source=source,
        body=body,
        content_type="md",
        title=title or heading_title(body),
        published=published,
        metadata=metadata,
    )


def front_matter(text: str) -> tuple[dict, str]:
    """The front matter's fields and the text after it; no fields and the whole text when there is none."""
    opening, newline, rest = text.removeprefix("\ufeff").partition("\n")
    closers = _CLOSING.get(opening.rstrip())
    if closers is None or not newline:
        return {}, text
    offset = 0
    for line in rest.splitlines(keepends=True):
        if line.rstrip() in closers:
            block, body = rest[:offset], rest[offset + len(line) :]
            break
        offset += len(line)
    else:
        return {}, text  # never closed: a thematic break
    try:
        fields = yaml.load(block, Loader=_SafeLoader) if closers[0] == "---" else tomllib.loads(block)
    except (yaml.YAMLError, ValueError, RecursionError):  # tomllib.TOMLDecodeError is a ValueError
        return {}, text
    if fields is None and not block.strip():
        return {}, body  # empty front matter
    if not isinstance(fields, dict):
        return {}, text  # two thematic breaks around a line or a list, not front matter
    return {str(key): _plain(value) for key, value in fields.items()}, body


def _plain(value: object, nested: bool = True) -> object:
    """YAML's and TOML's dates and times as ISO text, as a JSON record would carry them, in a list's items and a
    mapping's values (a `metadata` mapping is read). One level only: YAML's aliases make nested lists that would take
    billions of steps to walk ("billion laughs"), and metadata keeps only scalars and lists of them anyway."""
    if isinstance(value, (date, datetime, time)):
        return value.isoformat()
    if isinstance(value, list) and nested:
        return [_plain(item, nested=False) for item in value]
    if isinstance(value, dict) and nested:
        return {str(key): _plain(item, nested=False) for key, item in value.items()}
    return value


def heading_title(text: str) -> str | None:
    """The first ATX heading (`# Title`) outside a fenced code block."""
    in_fence = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and (m := _TITLE.fullmatch(line)):
            return m.group(1).strip()
    return None
