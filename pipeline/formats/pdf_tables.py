"""Tables of PDF pages as text rows: one row a line, cells joined by " | ".

pypdf (the reader of every page) writes a table row as words run together, cells lost. pdfplumber finds tables from
their ruling lines and gives the cells, but parses ~40x slower than pypdf, so it reads only the pages whose drawing
operators could form a grid: pypdf counts them while it extracts the text anyway.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable

CELL_SEPARATOR = " | "
# Rectangles and line segments a page draws before pdfplumber is asked to look for a table on it: a 2x2 grid of cell
# boxes is 4 rectangles; an underline or a frame alone stays under it.
MIN_RULINGS = 4
_RULING_OPS = (b"re", b"l")


class RulingCounter:
    """A pypdf visitor (visitor_operand_before) counting the drawing operators that make table rulings."""

    def __init__(self) -> None:
        self.ops: Counter[bytes] = Counter()

    def __call__(self, op: bytes, args, cm, tm) -> None:
        if op in _RULING_OPS:
            self.ops[op] += 1

    @property
    def may_hold_table(self) -> bool:
        return sum(self.ops.values()) >= MIN_RULINGS


def pages_with_tables(data: bytes, pages: list[int]) -> dict[int, str]:
    """The text of each page (0-based numbers) that holds a table, tables written as rows; pages without one are
    left out, for the caller to keep pypdf's text."""
    if not pages:
        return {}
    import pdfplumber

    out: dict[int, str] = {}
    with pdfplumber.open(io.BytesIO(data), pages=[n + 1 for n in pages]) as pdf:
        for page in pdf.pages:
            tables = page.find_tables()
            if tables:
                out[page.page_number - 1] = _page_text(page, tables)
            page.close()  # drops the page's parsed objects: a long PDF keeps one page in memory at a time
    return out


def _page_text(page, tables) -> str:
    boxes = [table.bbox for table in tables]
    lines: list[tuple[float, str]] = [
        (line["top"], line["text"]) for line in page.filter(_outside(boxes)).extract_text_lines()
    ]
    for table in tables:
        for row, cells in zip(table.rows, table.extract()):
            texts = [" ".join((cell or "").split()) for cell in cells]  # a wrapped cell is one cell
            if any(texts):
                lines.append((row.bbox[1], CELL_SEPARATOR.join(texts)))
    lines.sort(key=lambda item: item[0])  # reading order top to bottom, tables in their place
    return "\n".join(text for _, text in lines)


def _outside(boxes: list[tuple[float, float, float, float]]) -> Callable[[dict], bool]:
    def keep(obj: dict) -> bool:
        if "x0" not in obj or "top" not in obj:
            return True
        x, y = (obj["x0"] + obj["x1"]) / 2, (obj["top"] + obj["bottom"]) / 2
        return not any(x0 <= x <= x1 and top <= y <= bottom for x0, top, x1, bottom in boxes)

    return keep
