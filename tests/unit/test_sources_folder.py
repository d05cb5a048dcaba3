"""Folder sync planning: new, changed (by content hash), deleted, and retried files."""

import pytest

from pipeline.sources.errors import SourceError
from pipeline.sources.folder import FileState, KnownFile, plan_sync, scan_folder


def test_scan_hashes_content_and_skips_hidden_files(tmp_path):
    (tmp_path / "a.txt").write_text("alpha")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("beta")
    (tmp_path / ".hidden.txt").write_text("x")
    states = scan_folder(tmp_path)
    assert sorted(states) == [str(tmp_path / "a.txt"), str(tmp_path / "sub" / "b.md")]
    (tmp_path / "a.txt").write_text("alpha!")  # same name, new content
    assert scan_folder(tmp_path)[str(tmp_path / "a.txt")].file_hash != states[str(tmp_path / "a.txt")].file_hash


def test_a_missing_folder_is_an_error_not_a_mass_deletion(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        scan_folder(tmp_path / "unmounted")


def test_plan():
    current = {
        p: FileState(p, h, 1)
        for p, h in [("/f/same", "h1"), ("/f/edited", "h2-new"), ("/f/new", "h3"), ("/f/failed-before", "h4")]
    }
    known = {
        "/f/same": KnownFile("h1", True),
        "/f/edited": KnownFile("h2", True),
        "/f/failed-before": KnownFile("h4", False),
        "/f/gone": KnownFile("h5", True),
    }
    plan = plan_sync(current, known)
    assert plan.ingest == ["/f/edited", "/f/failed-before", "/f/new"]
    assert plan.unchanged == ["/f/same"]
    assert plan.deleted == ["/f/gone"]
