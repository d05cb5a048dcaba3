"""Text fidelity of the readers: one sample per format, written from a known word list, read and cleaned as an
ingest would; prints the share of the source words that come back (as a multiset: a word written twice must come
back twice to count twice).

    python bench/formats_fidelity.py [--words 240]

The samples are made by the same writers as the unit tests (tests/unit/test_formats_office.py, python-docx,
python-pptx, openpyxl, odfpy, ebooklib, the email package, Pillow for the scanned PDF); the OCR row needs the
tesseract binary.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import mailbox
import random
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.clean import clean  # noqa: E402
from pipeline.formats import read_path  # noqa: E402
from pipeline.types import RawDocument  # noqa: E402
from tests.unit.test_formats import make_pdf  # noqa: E402
from tests.unit.test_formats_mhtml import make_mhtml  # noqa: E402
from tests.unit.test_formats_odp import make_odp  # noqa: E402
from tests.unit.test_formats_office import (  # noqa: E402
    make_docx,
    make_eml,
    make_epub,
    make_ods,
    make_odt,
    make_pptx,
    make_rtf,
    make_xlsx,
)
from tests.unit.test_formats_pdf_ocr import make_scanned_pdf  # noqa: E402
from tests.unit.test_formats_wordml import make_word, p, r  # noqa: E402

VOCABULARY = """
river garden window morning silver harvest lantern meadow copper village bridge orchard thunder pebble
winter market forest candle harbor pepper ladder kitten mirror valley button marble saddle rocket
blanket cabbage dolphin engine feather giraffe hammer island jacket kettle lemon magnet needle ocean
parrot quilt rabbit sunset tractor umbrella violin walnut yellow zebra anchor basket cactus desert
eagle falcon glacier helmet igloo jungle kayak lizard meteor nectar oyster pillow quartz raven salmon
tunnel uniform velvet whistle yogurt zipper acorn beacon canyon dragon ember fossil gravel hollow
insect jasmine kernel lagoon mitten nutmeg onion pirate puzzle riddle spider timber turnip vessel
wagon summit prairie crystal pumpkin cobalt granite sparrow chimney tundra bamboo coral puddle
""".split()


def word_list(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(VOCABULARY) for _ in range(n)]


def chunks(words: list[str], size: int) -> list[list[str]]:
    return [words[i : i + size] for i in range(0, len(words), size)]


def sentences(words: list[str], size: int = 12) -> list[str]:
    return [" ".join(part) for part in chunks(words, size)]


def table(words: list[str], columns: int = 3) -> list[list[str]]:
    rows = chunks(words, columns)
    return [row + [""] * (columns - len(row)) for row in rows]


def samples(words: list[str], tmp: Path) -> dict[str, Callable[[], tuple[str, bytes]]]:
    """format -> a maker of (file name, bytes) holding exactly these words as body text (titles aside)."""
    third, half = len(words) // 3, len(words) // 2
    text, rest = sentences(words[: 2 * third]), words[2 * third :]

    def csv_bytes() -> bytes:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["id", "text"])
        writer.writerows([n, s] for n, s in enumerate(sentences(words)))
        return out.getvalue().encode()

    def pptx_bytes() -> bytes:
        slides = [(" ".join(s[:3]), [" ".join(s[3:8]), " ".join(s[8:])], "") for s in chunks(words, 12)]
        return make_pptx([(t, [b for b in bullets if b], n) for t, bullets, n in slides])

    def mbox_bytes() -> bytes:
        box = mailbox.mbox(tmp / "s.mbox")
        for n, sentence in enumerate(sentences(words, 40)):
            box.add(make_eml(sentence, []).replace(b"abc123@example.com", f"m{n}@example.com".encode()))
        box.flush()
        box.close()
        return (tmp / "s.mbox").read_bytes()

    def tracked_docx() -> bytes:
        # every other sentence a tracked insertion, and a deletion of other words that must not come back
        runs = [
            f'<w:ins w:id="{n}" w:author="A"><w:r><w:t>{s} </w:t></w:r></w:ins>' if n % 2 else r(s + " ")
            for n, s in enumerate(sentences(words))
        ]
        return make_word(p(*runs, '<w:del w:id="0" w:author="A"><w:r><w:delText>zzdeleted</w:delText></w:r></w:del>'))

    def vtt_bytes() -> bytes:
        cues = (f"{n}\n00:00:{n:02d}.000 --> 00:00:{n:02d}.900\n{s}\n" for n, s in enumerate(sentences(words), 1))
        return ("WEBVTT\n\n" + "\n".join(cues)).encode()

    def ipynb_bytes() -> bytes:
        cells = [{"cell_type": "markdown", "source": s} for s in sentences(words)]
        return json.dumps({"nbformat": 4, "metadata": {}, "cells": cells}).encode()

    return {
        "txt": lambda: ("s.txt", "\n\n".join(sentences(words)).encode()),
        "md": lambda: ("s.md", ("\n\n".join(f"- {s}" for s in sentences(words))).encode()),
        "html": lambda: ("s.html", ("<html><body>" + "".join(f"<p>{s}</p>" for s in sentences(words))).encode()),
        "pdf": lambda: ("s.pdf", make_pdf(sentences(words))),
        "pdf (scanned, OCR)": lambda: ("scan.pdf", make_scanned_pdf(sentences(words, 5))),
        "json": lambda: ("s.json", json.dumps([{"id": n, "text": s} for n, s in enumerate(sentences(words))]).encode()),
        "jsonl": lambda: ("s.jsonl", "\n".join(json.dumps({"text": s}) for s in sentences(words)).encode()),
        "csv": lambda: ("s.csv", csv_bytes()),
        "docx": lambda: ("s.docx", make_docx(text[0], text[1:], table(rest))),
        "pptx": lambda: ("s.pptx", pptx_bytes()),
        "xlsx": lambda: ("s.xlsx", make_xlsx({"A": table(words[:half]), "B": table(words[half:])}, formula=False)),
        "ods": lambda: ("s.ods", make_ods({"A": table(words[:half]), "B": table(words[half:])})),
        "odt": lambda: ("s.odt", make_odt(text[0], text[1:], table(rest), [])),
        "epub": lambda: ("s.epub", make_epub([("", [s]) for s in sentences(words, 40)], tmp / "w.epub")),
        "eml": lambda: ("s.eml", make_eml("\n\n".join(sentences(words)), [])),
        "rtf": lambda: ("s.rtf", make_rtf(sentences(words))),
        "docx (tracked changes)": lambda: ("t.docx", tracked_docx()),
        "odp": lambda: ("s.odp", make_odp([(" ".join(c[:3]), [" ".join(c[3:])], "") for c in chunks(words, 12)])),
        "mhtml": lambda: ("s.mhtml", make_mhtml("<html><body>" + "".join(f"<p>{s}</p>" for s in sentences(words)))),
        "mbox": lambda: ("s.mbox", mbox_bytes()),
        "ipynb": lambda: ("s.ipynb", ipynb_bytes()),
        "vtt": lambda: ("s.vtt", vtt_bytes()),
    }


def recovered(source: list[str], text: str) -> tuple[int, int]:
    """(source words found, extra words): both as multisets of lower-cased tokens without edge punctuation."""
    tokens = (w.strip(".,;:!?|-#*\"'()").lower() for w in text.split())
    got = Counter(t for t in tokens if t)  # table bars and list marks are structure, not words
    want = Counter(source)
    found = sum(min(count, got[w]) for w, count in want.items())
    return found, sum(got.values()) - found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--words", type=int, default=240)
    args = parser.parse_args()
    words = word_list(args.words)
    print(f"{'format':<24} {'recovered':>9} {'of':>5} {'share':>7} {'extra':>6}  note")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        for name, make in samples(words, tmp).items():
            filename, data = make()
            path = tmp / filename
            path.write_bytes(data)
            items = list(read_path(path, 50_000_000))
            docs = [item for item in items if isinstance(item, RawDocument)]
            cleaned = [clean(doc) for doc in docs]
            text = "\n".join(getattr(c, "text", "") for c in cleaned)
            found, extra = recovered(words, text)
            note = "; ".join(f"{i.reason}: {i.detail}" for i in items if not isinstance(i, RawDocument))
            print(f"{name:<24} {found:>9} {len(words):>5} {found / len(words):>7.1%} {extra:>6}  {note}")


if __name__ == "__main__":
    main()
