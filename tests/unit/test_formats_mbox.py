"""Mailboxes (.mbox), written by Python's own mailbox module: each message is read as an .eml file, attachments
included, named by its Message-ID; a message's failure is its own dead letter."""

from __future__ import annotations

import mailbox
from email import message_from_bytes
from email.policy import default

from pipeline.errors import Reason
from pipeline.formats import read_path
from pipeline.jobs.counting import count_items
from pipeline.types import RawDocument, Rejected
from tests.unit.test_formats_office import make_eml

MAX = 2_000_000


def write_mbox(path, messages: list[bytes]) -> None:
    box = mailbox.mbox(path)
    for raw in messages:
        box.add(message_from_bytes(raw, policy=default))
    box.flush()
    box.close()


def with_id(raw: bytes, message_id: str | None) -> bytes:
    message = message_from_bytes(raw, policy=default)
    del message["Message-ID"]
    if message_id is not None:
        message["Message-ID"] = message_id
    return message.as_bytes()


def test_each_message_is_read_with_its_attachments_and_named_by_its_message_id(tmp_path):
    path = tmp_path / "Inbox.mbox"
    first = with_id(
        make_eml("Rates rose today.\nFrom the desk: more soon.", [("n.txt", b"Attached note.", "text/plain")]), "<a1@x>"
    )
    second = with_id(make_eml("No id here.", [], subject="Second"), None)
    twin = make_eml("Same id once.", [], subject="Twin one")  # <abc123@example.com> twice in the file
    twin_two = make_eml("Same id twice.", [], subject="Twin two")
    write_mbox(path, [first, second, twin, twin_two])
    items = list(read_path(path, MAX))
    assert all(isinstance(item, RawDocument) for item in items), items
    box = str(path.resolve())
    assert [item.source for item in items] == [
        f"{box}#a1@x",
        f"{box}#a1@x#attachment/1/n.txt",
        f"{box}#2",
        f"{box}#3",
        f"{box}#4",
    ]
    # mailbox quoted the body's "From " line (">From "); the read undoes it
    assert items[0].body.splitlines() == ["Rates rose today.", "From the desk: more soon."]
    assert items[0].title == "Quarterly figures" and items[1].body == "Attached note."
    assert [items[3].title, items[4].title] == ["Twin one", "Twin two"]
    assert count_items(path, MAX) == 4  # messages; attachments add to the total as they are read


def test_a_broken_message_is_its_own_dead_letter_and_the_rest_is_read(tmp_path):
    path = tmp_path / "box.mbox"
    path.write_bytes(
        b"From a@x Mon Jan  1 00:00:00 2024\n" + with_id(make_eml("Good one.", []), "<g1@x>")
        + b"\nFrom b@x Mon Jan  1 00:00:00 2024\nnot a message at all\n"
        + b"\nFrom c@x Mon Jan  1 00:00:00 2024\n" + with_id(make_eml("Good two.", []), "<g2@x>")
    )  # fmt: skip
    items = list(read_path(path, MAX))
    assert [type(item).__name__ for item in items] == ["RawDocument", "Rejected", "RawDocument"]
    assert items[1].reason == Reason.CORRUPT_FILE and items[1].source.endswith("box.mbox#2")
    assert [items[0].body.strip(), items[2].body.strip()] == ["Good one.", "Good two."]


def test_a_file_that_is_not_a_mailbox_is_one_corrupt_file(tmp_path):
    path = tmp_path / "notes.mbox"
    path.write_bytes(b"Subject: hello\n\nJust a message without a From line.\n")
    (item,) = read_path(path, MAX)
    assert isinstance(item, Rejected) and item.reason == Reason.CORRUPT_FILE and "From" in item.detail
    assert count_items(path, MAX) == 1


def test_a_folded_message_id_still_names_its_message(tmp_path):
    path = tmp_path / "folded.mbox"
    message = make_eml("Folded header.", []).replace(b"Message-ID: <abc123@example.com>", b"Message-ID:\n <fold@x>")
    path.write_bytes(b"From a@x Mon Jan  1 00:00:00 2024\n" + message)
    (doc,) = read_path(path, MAX)
    assert doc.source.endswith("folded.mbox#fold@x"), doc.source


def test_skip_passes_over_attachments_and_messages_before_a_stored_part_unread(tmp_path, monkeypatch):
    from pipeline.formats import files as dispatcher
    from tests.unit.test_formats import make_pdf

    pdf = ("a.pdf", make_pdf(["Attached report"]), "application/pdf")
    notes = ("n.txt", b"Attached note.", "text/plain")
    first = with_id(make_eml("First body.", [pdf, notes, pdf]), "<s1@x>")
    second = with_id(make_eml("Second body.", [notes, pdf]), "<s2@x>")
    path = tmp_path / "skip.mbox"
    write_mbox(path, [first, second])
    single = tmp_path / "one.eml"
    single.write_bytes(first)
    for file in (path, single):
        full = [(item.source, type(item).__name__) for item in read_path(file, MAX)]
        for skip in range(len(full) + 2):
            assert [(item.source, type(item).__name__) for item in read_path(file, MAX, skip=skip)] == full[skip:]
    assert len(full) == 4  # the single message: its body and three attachments
    pdf_reads = []

    def counted_pdf(data: bytes, source: str) -> RawDocument:
        pdf_reads.append(source)
        return RawDocument(source=source, body="read", content_type="pdf")

    monkeypatch.setitem(dispatcher._BINARY_READERS, ".pdf", counted_pdf)
    tail = list(read_path(path, MAX, skip=6))  # message 1 (four items), message 2's body and note
    assert [item.source for item in tail] == pdf_reads == [f"{path.resolve()}#s2@x#attachment/2/a.pdf"]
