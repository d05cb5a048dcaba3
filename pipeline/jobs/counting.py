"""A job's items counted before any is read, so that its total is known before its first document is indexed.

An item is what becomes one document or one dead letter: a text, Markdown, HTML or PDF file is one; a JSON,
JSON Lines or CSV file holds one per record (and one per record or line it refuses); an archive one per item of
each member. The structured files are parsed once here for the count, with the reader that will read them, so the
count and the read agree; an archive's members that hold one item each are only listed
(pipeline.formats.files.count_items).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from pipeline.formats.files import count_items
from pipeline.store.models import JobFile


def count_pending_files(session: Session, files: list[JobFile], max_bytes: int) -> None:
    """Record in `records` how many items each file not yet read holds (read_file overwrites it with what it read)."""
    for jobfile in files:
        if jobfile.status == "pending" and not jobfile.records:
            jobfile.records = count_items(Path(jobfile.path), max_bytes)
