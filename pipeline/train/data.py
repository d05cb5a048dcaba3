"""Training data: read a table with pandas, validate it, split it, fingerprint it.

Every problem is found here, before a model is loaded, and reported as a DataError whose message
says what is wrong and where (column names, row numbers).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from pipeline.errors import PermanentError

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
}


class DataError(PermanentError):
    """The training data cannot be used as given."""


@dataclass
class Examples:
    texts: list[str]
    labels: list[str]  # label strings, one per text
    ids: list[str | None]  # links an example to its own document (Document.source)
    times: list[datetime | None]  # UTC; None when no time column was given
    label_set: list[str]  # sorted: index i is class i of the model

    def __len__(self) -> int:
        return len(self.texts)

    def targets(self) -> np.ndarray:
        index = {label: i for i, label in enumerate(self.label_set)}
        return np.array([index[label] for label in self.labels], dtype=np.int64)


def read_table(path: str | Path):
    import pandas as pd

    path = Path(path)
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"{path.name}: unsupported data file type {path.suffix or '(none)'}; "
            f"use one of {', '.join(sorted(FORMATS))}"
        )
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    try:
        if kind in ("csv", "tsv"):
            return pd.read_csv(path, sep="\t" if kind == "tsv" else ",", dtype=str, keep_default_na=False)
        if kind == "jsonl":
            return pd.read_json(path, lines=True, dtype=False)
        if kind == "json":
            try:
                return pd.read_json(path, dtype=False)
            except ValueError:
                return pd.read_json(path, lines=True, dtype=False)
        return pd.read_parquet(path)
    except DataError:
        raise
    except Exception as exc:  # pandas/pyarrow raise a zoo of types for one cause: an unreadable file
        raise DataError(f"{path.name}: cannot be read as {kind}: {type(exc).__name__}: {exc}") from exc


def _rows(mask) -> str:
    rows = [int(i) + 1 for i in np.flatnonzero(np.asarray(mask))]
    shown = ", ".join(map(str, rows[:5]))
    return f"{len(rows)} row(s) (data rows {shown}{', ...' if len(rows) > 5 else ''})"


def _blank(series) -> np.ndarray:
    return np.array(
        [v is None or (isinstance(v, float) and np.isnan(v)) or str(v).strip() == "" for v in series], dtype=bool
    )


def validate(df, text_col: str, label_col: str, id_col: str | None = None, time_col: str | None = None) -> Examples:
    if len(df) == 0:
        raise DataError("the data file holds no rows")
    wanted = [c for c in (text_col, label_col, id_col, time_col) if c]
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        raise DataError(
            f"missing column(s) {', '.join(map(repr, missing))}; the file has "
            f"{', '.join(map(repr, map(str, df.columns)))}"
        )
    empty = _blank(df[text_col])
    if empty.any():
        raise DataError(f"empty text in column {text_col!r}: {_rows(empty)}; fill or drop them")
    unlabelled = _blank(df[label_col])
    if unlabelled.any():
        raise DataError(f"no label in column {label_col!r}: {_rows(unlabelled)}")
    labels = [str(v).strip() for v in df[label_col]]
    label_set = sorted(set(labels))
    if len(label_set) < 2:
        raise DataError(f"column {label_col!r} has a single class ({label_set[0]!r}); a classifier needs two or more")
    if len(label_set) * 2 > len(df):  # also catches as many classes as rows (every label unique)
        raise DataError(
            f"{len(label_set)} classes for only {len(df)} rows: too few examples per class to "
            "train and evaluate; give each class at least two rows"
        )
    ids: list[str | None] = (
        [None if b else str(v).strip() for v, b in zip(df[id_col], _blank(df[id_col]))] if id_col else [None] * len(df)
    )
    times: list[datetime | None] = [None] * len(df)
    if time_col:
        times = list(_parse_times(df[time_col], time_col))
    return Examples([str(t) for t in df[text_col]], labels, ids, times, label_set)


def _parse_times(series, column: str) -> list[datetime]:
    import pandas as pd

    parsed = pd.to_datetime(series, utc=True, errors="coerce", format="mixed")
    bad = parsed.isna().to_numpy()
    if bad.any():
        raise DataError(f"column {column!r} has missing or unreadable times: {_rows(bad)}")
    return [ts.to_pydatetime().astimezone(UTC) for ts in parsed]


def load_examples(
    path: str | Path, text_col: str, label_col: str, id_col: str | None = None, time_col: str | None = None
) -> Examples:
    return validate(read_table(path), text_col, label_col, id_col, time_col)


def split(examples: Examples, eval_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train rows, held-out rows). With times: the latest examples are held out (no peeking ahead);
    otherwise a stratified random split, so every class is seen in training."""
    if not 0 < eval_fraction < 1:
        raise DataError(f"eval fraction must lie between 0 and 1, got {eval_fraction}")
    n = len(examples)
    if examples.times[0] is not None:
        order = sorted(range(n), key=lambda i: (examples.times[i], i))
        cut = min(n - 1, max(1, n - round(n * eval_fraction)))
        train, held = order[:cut], order[cut:]
    else:
        rng = np.random.default_rng(seed)
        train, held = [], []
        for label in examples.label_set:
            rows = [i for i, lab in enumerate(examples.labels) if lab == label]
            rows = [rows[i] for i in rng.permutation(len(rows))]
            k = min(len(rows) - 1, round(len(rows) * eval_fraction))  # one always stays in training
            held += rows[:k]
            train += rows[k:]
        if not held:
            raise DataError(f"{n} rows leave nothing to evaluate on; add rows or raise the eval fraction")
        train, held = sorted(train), sorted(held)
    unseen = sorted({examples.labels[i] for i in held} - {examples.labels[i] for i in train})
    if unseen:
        raise DataError(
            f"label(s) {', '.join(map(repr, unseen))} occur only in the held-out split "
            "(the latest examples): the model could never predict them; add earlier examples"
        )
    return train, held


def rows_hash(rows: Iterable[list]) -> str:
    """sha256 of the rows as JSON lines, in order."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps(row).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def data_hash(examples: Examples) -> str:
    """sha256 of what training sees: the rows in file order (text, label, id, time)."""
    rows = zip(examples.texts, examples.labels, examples.ids, examples.times)
    return rows_hash([text, label, ex_id, ts.isoformat() if ts else None] for text, label, ex_id, ts in rows)
