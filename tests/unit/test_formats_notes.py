"""Jupyter notebooks and subtitle transcripts: the words without the JSON, cue numbers, timings and styling."""

from __future__ import annotations

import json

import pytest

from pipeline.errors import Reason
from pipeline.formats import SUPPORTED_SUFFIXES
from pipeline.types import RawDocument, Rejected
from tests.unit.test_formats_office import only_doc, read_all, write


def notebook(cells: list[dict], nbformat: int = 4) -> bytes:
    meta = {"kernelspec": {"name": "python3", "language": "python"}, "language_info": {"name": "python"}}
    if nbformat == 3:
        return json.dumps({"nbformat": 3, "metadata": meta, "worksheets": [{"cells": cells}]}).encode()
    return json.dumps({"nbformat": 4, "metadata": meta, "cells": cells}).encode()


CELLS = [
    {"cell_type": "markdown", "source": ["# Harbour traffic\n", "\n", "Ships per day, by berth."]},
    {
        "cell_type": "code",
        "source": ["import pandas as pd\n", "df = pd.read_csv('ships.csv')"],
        "outputs": [{"output_type": "stream", "name": "stdout", "text": ["OUTPUTWORD " * 500]}],
    },
    {"cell_type": "code", "source": "", "outputs": []},
    {"cell_type": "raw", "source": "Raw note."},
]


def test_a_notebook_is_its_markdown_and_code_without_outputs(tmp_path):
    doc = only_doc(write(tmp_path, "traffic.ipynb", notebook(CELLS)))
    assert doc.body.split("\n\n") == [
        "# Harbour traffic",
        "Ships per day, by berth.",
        "```python\nimport pandas as pd\ndf = pd.read_csv('ships.csv')\n```",
        "Raw note.",
    ]
    assert (doc.content_type, doc.title, doc.metadata) == ("ipynb", "Harbour traffic", {"kernel": "python", "cells": 4})
    v3 = [{"cell_type": "markdown", "source": "Old notes."}, {"cell_type": "code", "input": "x = 1"}]
    assert (
        only_doc(write(tmp_path, "old.ipynb", notebook(v3, nbformat=3))).body == "Old notes.\n\n```python\nx = 1\n```"
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"{not json", Reason.INVALID_JSON), (b"[1, 2]", Reason.CORRUPT_FILE), (b'{"cells": 3}', Reason.CORRUPT_FILE)],
)
def test_what_is_not_a_notebook_says_so(tmp_path, data, reason):
    (item,) = read_all(write(tmp_path, "bad.ipynb", data))
    assert isinstance(item, Rejected) and item.reason == reason
    (empty,) = read_all(write(tmp_path, "empty.ipynb", notebook([{"cell_type": "code", "source": ""}])))
    assert empty.reason == Reason.EMPTY


VTT = """WEBVTT - Weekly sync

NOTE recorded by the meeting app

STYLE
::cue { color: yellow }

1
00:00:01.000 --> 00:00:04.000 align:start
<v Ann Lee>Good morning, <i>everyone</i>.</v>

2
00:00:04.500 --> 00:00:06.000
<v Ann Lee>The cranes are late.

00:00:06.000 --> 00:00:09.000
<v.loud Bo>Which <00:00:07.000>berth?

3
00:00:09.500 --> 00:00:11.000
Berth four.
"""

SRT = (
    "1\r\n00:00:01,000 --> 00:00:03,000\r\nAnn Lee: We start now.\r\n\r\n"
    "2\r\n00:00:03,500 --> 00:00:05,000\r\nTime: ten o'clock, she said: late.\r\n\r\n"
    "3\r\n00:00:05,000 --> 00:00:07,000\r\nBo: Agreed.\r\nSecond line.\r\n"
)


def test_a_webvtt_meeting_reads_as_a_transcript_by_speaker(tmp_path):
    doc = only_doc(write(tmp_path, "sync.vtt", VTT.encode()))
    assert doc.body.split("\n\n") == [
        "Ann Lee: Good morning, everyone. The cranes are late.",
        "Bo: Which berth? Berth four.",
    ]
    assert (doc.content_type, doc.metadata) == ("transcript", {"cues": 4, "speakers": ["Ann Lee", "Bo"]})


def test_srt_cues_with_speaker_names_and_without(tmp_path):
    doc = only_doc(write(tmp_path, "call.srt", SRT.encode()))
    # "Time:" opens a cue as a name would; a name has no sentence punctuation after it, so this one is taken too:
    # what matters is that no word is lost
    assert doc.body.split("\n\n") == [
        "Ann Lee: We start now.",
        "Time: ten o'clock, she said: late.",
        "Bo: Agreed. Second line.",
    ]
    plain = only_doc(
        write(
            tmp_path,
            "film.srt",
            b"1\n00:00:01,000 --> 00:00:02,000\nHello there.\n\n2\n00:00:02,000 --> 00:00:03,000\nGeneral.\n",
        )
    )
    assert (plain.body, plain.metadata) == ("Hello there. General.", {"cues": 2})


def test_a_file_without_cues_is_corrupt_and_the_suffixes_are_supported(tmp_path):
    (item,) = read_all(write(tmp_path, "notes.srt", b"just some words\nno timings\n"))
    assert isinstance(item, Rejected) and item.reason == Reason.CORRUPT_FILE and "timing" in item.detail
    assert {".ipynb", ".srt", ".vtt"} <= SUPPORTED_SUFFIXES
    assert isinstance(
        only_doc(write(tmp_path, "x.vtt", b"WEBVTT\n\n00:01.000 --> 00:02.000\nShort form.\n")), RawDocument
    )


@pytest.mark.parametrize("line", ["<" * 200_000, "<v a" * 50_000, "<i" * 100_000])
def test_a_hostile_cue_line_is_read_in_linear_time(line):
    from pipeline.formats.notes import read_subtitles

    doc = read_subtitles("1\n00:00:01,000 --> 00:00:02,000\n" + line + "\n", "x.srt")  # never ends if quadratic
    assert doc.body
