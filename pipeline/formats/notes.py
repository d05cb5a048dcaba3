"""Jupyter notebooks (.ipynb) and transcripts in subtitle form (.srt, .vtt: Zoom, Teams, YouTube captions): text
formats whose markup around the words (JSON cells, cue numbers and timings) would otherwise be indexed as text."""

from __future__ import annotations

import json
import re

from pipeline.errors import InputError, Reason
from pipeline.formats.common import properties
from pipeline.formats.markdown import heading_title
from pipeline.types import RawDocument

# a cue's timing line: "00:01:02,500 --> 00:01:04,000" (SRT) or "01:02.500 --> 01:04.000 align:start" (WebVTT)
_TIMING = re.compile(r"\s*(?:\d+:)?\d{1,2}:\d{2}[.,]\d{1,3}\s+-->\s+(?:\d+:)?\d{1,2}:\d{2}[.,]\d{1,3}")
# WebVTT's speaker (<v Ann>, <v.loud Ann>) and tags (<i>, <c.yellow>, </v>, inline timestamps <00:00:01.000>),
# bounded and stopping at the next "<": a hostile line of "<" without ">" is read in linear time
_VOICE = re.compile(r"<v(?:\.[^ <>]{0,40})?\s+([^<>]{1,100})>")
_TAG = re.compile(r"</?[^<>]{0,200}>")
# "Ann Lee: text" opening a cue, as Zoom's transcripts write it: a name of at most four words, no sentence punctuation
_SPEAKER = re.compile(r"([^\s:.!?,;][^:.!?,;\n]{0,40}):\s")
_MAX_NAME_WORDS = 4
_VTT_BLOCKS = ("WEBVTT", "NOTE", "STYLE", "REGION")


def read_notebook(text: str, source: str) -> RawDocument:
    """Markdown cells as they are, code cells as fenced code in the kernel's language; outputs are not read (results,
    logs and tables of a run, often larger than the notebook's prose). The first heading is the title."""
    try:
        notebook = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InputError(Reason.INVALID_JSON, f"notebook is not valid JSON: {exc}") from None
    if not isinstance(notebook, dict):
        raise InputError(Reason.CORRUPT_FILE, "not a Jupyter notebook: the JSON is not an object")
    cells = notebook.get("cells")
    sheets = notebook.get("worksheets")
    if cells is None and isinstance(sheets, list):  # nbformat 3 kept them in worksheets
        cells = [cell for sheet in sheets if isinstance(sheet, dict) for cell in sheet.get("cells") or []]
    if not isinstance(cells, list):
        raise InputError(Reason.CORRUPT_FILE, "not a Jupyter notebook: no cells")
    meta = notebook.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    kernel = _name(meta.get("language_info")) or _name(meta.get("kernelspec"), "language") or ""
    blocks: list[str] = []
    for cell in cells:
        if not isinstance(cell, dict):
            continue
        body = _cell_source(cell)
        if not body.strip():
            continue
        if cell.get("cell_type") == "code":
            blocks.append(f"```{kernel}\n{body.rstrip()}\n```")
        elif cell.get("cell_type") in ("markdown", "raw"):
            blocks.append(body.strip())
    if not blocks:
        raise InputError(Reason.EMPTY, f"notebook has {len(cells)} cell(s) and none holds text")
    body = "\n\n".join(blocks)
    return RawDocument(
        source=source,
        body=body,
        content_type="ipynb",
        title=heading_title(body),
        metadata=properties(kernel=kernel, cells=len(cells)),
    )


def _cell_source(cell: dict) -> str:
    value = cell.get("source", cell.get("input"))  # nbformat 3 named a code cell's source "input"
    if isinstance(value, list):
        return "".join(part for part in value if isinstance(part, str))
    return value if isinstance(value, str) else ""


def _name(value: object, key: str = "name") -> str | None:
    name = value.get(key) if isinstance(value, dict) else None
    return name.strip() if isinstance(name, str) and name.strip() else None


def read_subtitles(text: str, source: str) -> RawDocument:
    """The words of each cue, without its number, timing and styling; a speaker (WebVTT's `<v Ann>`, or an "Ann: "
    opening a cue) starts a paragraph `Ann: ...` that runs until another speaker talks, so a meeting reads as a
    transcript. WebVTT's header, notes, styles and regions are left out."""
    turns: list[tuple[str | None, list[str]]] = []  # speaker, words
    cues = 0
    for block in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
        lines = [line for line in block.split("\n") if line.strip()]
        if not lines or lines[0].lstrip("\ufeff").split(" ", 1)[0].split("\t", 1)[0] in _VTT_BLOCKS:
            continue
        timing = next((n for n, line in enumerate(lines[:2]) if _TIMING.match(line)), None)
        if timing is None:
            continue  # not a cue
        cues += 1
        for n, line in enumerate(lines[timing + 1 :]):
            voice = _VOICE.search(line)
            words = " ".join(_TAG.sub("", line).split())
            speaker = voice.group(1).strip() if voice else None
            said = _SPEAKER.match(words) if speaker is None and n == 0 else None
            if said and len(said.group(1).split()) <= _MAX_NAME_WORDS:
                speaker, words = said.group(1).strip(), words[said.end() :]
            if not words:
                continue
            if turns and (speaker is None or speaker == turns[-1][0]):
                turns[-1][1].append(words)
            else:
                turns.append((speaker, [words]))
    if not cues:
        raise InputError(Reason.CORRUPT_FILE, "not a subtitle file: no cue with a timing line (00:00:01,000 --> ...)")
    if not turns:
        raise InputError(Reason.EMPTY, f"subtitles have {cues} cue(s) and no words")
    paragraphs = [(f"{speaker}: " if speaker else "") + " ".join(words) for speaker, words in turns]
    speakers = list(dict.fromkeys(speaker for speaker, _ in turns if speaker))
    return RawDocument(
        source=source,
        body="\n\n".join(paragraphs),
        content_type="transcript",
        metadata=properties(cues=cues, speakers=speakers[:100]),
    )
