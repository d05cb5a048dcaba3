"""Markdown front matter: YAML or TOML fields become the title, date and metadata and leave the text; what only
looks like front matter (thematic breaks, a block that does not parse, one never closed) stays text."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.formats import SUPPORTED_SUFFIXES
from pipeline.formats.markdown import front_matter, read_markdown
from pipeline.metadata import check_metadata
from tests.unit.test_formats_office import only_doc, write

POST = """---
title: "Rates: what changed"
date: 2024-03-05
tags: [economy, rates]
draft: false
weight: 3
author:
  name: Ann
metadata:
  desk: markets
  reviewed: 2024-03-06
---
# A heading that is not the title

The central bank raised rates.
"""


def test_yaml_front_matter_gives_title_date_and_metadata_and_leaves_the_text(tmp_path):
    doc = only_doc(write(tmp_path, "post.md", POST.encode()))
    assert doc.body == "# A heading that is not the title\n\nThe central bank raised rates.\n"
    assert (doc.content_type, doc.title) == ("md", "Rates: what changed")
    assert doc.published == datetime(2024, 3, 5, tzinfo=UTC)
    # a mapping other than `metadata` is not a metadata value; `metadata`'s pairs are, as for a record
    assert doc.metadata == {
        "date": "2024-03-05",
        "tags": ["economy", "rates"],
        "draft": False,
        "weight": 3,
        "desk": "markets",
        "reviewed": "2024-03-06",
    }
    assert check_metadata(doc.metadata)["tags"] == ["economy", "rates"]  # what the cleaner keeps


def test_toml_front_matter_and_the_other_yaml_closing_line(tmp_path):
    toml = '+++\ntitle = "Hugo page"\ndate = 2024-01-02T03:04:05Z\ncategories = ["a"]\n+++\nBody text.\n'
    doc = read_markdown(toml, "p.md")
    assert (doc.title, doc.body, doc.metadata["categories"]) == ("Hugo page", "Body text.\n", ["a"])
    assert doc.published == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    fields, body = front_matter("\ufeff---\r\ntitle: Windows\r\n...\r\nText.\r\n")
    assert (fields, body) == ({"title": "Windows"}, "Text.\r\n")


@pytest.mark.parametrize(
    "text",
    [
        "---\nAn introduction between two rules.\n---\n# Title\nMore.\n",  # thematic breaks around a line
        "---\n- a list\n- not a mapping\n---\nMore.\n",
        "---\ntitle: [unclosed\n---\nMore.\n",  # YAML that does not parse
        "+++\ntitle = \n+++\nMore.\n",  # TOML that does not parse
        "---\ntitle: never closed\n\nMore text.\n",
        "--- \n",
        "Text first\n---\ntitle: x\n---\n",  # front matter opens a file or is not front matter
    ],
)
def test_what_only_looks_like_front_matter_stays_text(text):
    assert front_matter(text) == ({}, text)
    doc = read_markdown(text, "x.md")
    assert doc.body == text and doc.metadata == {} and doc.published is None


def test_empty_front_matter_goes_and_the_heading_is_the_title():
    doc = read_markdown("---\n---\n# Notes\nBody.\n", "n.md")
    assert (doc.body, doc.title, doc.metadata) == ("# Notes\nBody.\n", "Notes", {})


def test_aliases_that_expand_to_billions_are_not_walked():
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 10)]  # 10^10 leaves
    doc = read_markdown("---\n" + "\n".join(levels) + "\ntitle: Laughs\n---\nBody.\n", "l.md")
    assert doc.title == "Laughs" and doc.metadata == {"a0": ["x"] * 10} and doc.body == "Body.\n"


def test_mdx_is_markdown():
    assert {".md", ".markdown", ".mdx"} <= SUPPORTED_SUFFIXES
