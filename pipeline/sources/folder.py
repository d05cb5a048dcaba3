"""Folder re-sync: which files are new, changed (by content hash) or gone since the last sync."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.formats import iter_files
from pipeline.sources.errors import SourceError

_BLOCK = 1024 * 1024


@dataclass(frozen=True)
class FileState:
    path: str
    file_hash: str
    size: int


@dataclass(frozen=True)
class KnownFile:
    file_hash: str
    settled: bool  # the job that read this content ended, and did not fail or get cancelled


@dataclass
class SyncPlan:
    ingest: list[str] = field(default_factory=list)  # new, changed, or whose last ingest did not settle
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def file_hash(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def scan_folder(folder: Path) -> dict[str, FileState]:
    """Every file the ingest would read under folder, with its content hash.

    A missing folder is an error, never "every file was deleted": an unmounted share must not
    empty the index.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SourceError(f"folder {folder} does not exist or is not a folder (unmounted?)")
    states: dict[str, FileState] = {}
    for path in iter_files([folder]):
        try:
            digest, size = file_hash(path)
        except FileNotFoundError:
            continue  # removed between listing and reading: it is gone
        except OSError as exc:
            # Unreadable, but present: ingesting it records a dead letter saying why; leaving it
            # out would count it as deleted.
            digest, size = f"unreadable:{exc.errno}", 0
        states[str(path)] = FileState(str(path), digest, size)
    return states


def plan_sync(current: dict[str, FileState], known: dict[str, KnownFile]) -> SyncPlan:
    plan = SyncPlan()
    for path in sorted(current):
        before = known.get(path)
        if before is None or before.file_hash != current[path].file_hash or not before.settled:
            plan.ingest.append(path)
        else:
            plan.unchanged.append(path)
    plan.deleted = sorted(set(known) - set(current))
    return plan
