"""A password (or DRM) is what stops these reads, not damage: each is an `encrypted` dead letter that says what to do,
so a user can find every locked file of a job by its reason; a legacy binary Office file under a new suffix is
`corrupt_file` and says to save it again."""

from __future__ import annotations

import io
import zipfile

from pypdf import PdfReader, PdfWriter

from pipeline.errors import Reason
from pipeline.formats.common import OLE_MAGIC
from pipeline.types import Rejected
from tests.unit.test_formats import make_pdf
from tests.unit.test_formats_office import _replace_part, make_epub, read_all, write


def only_rejection(path) -> Rejected:
    (item,) = read_all(path)
    assert isinstance(item, Rejected), item
    return item


def test_a_pdf_with_a_password_is_encrypted_and_one_without_a_user_password_is_read(tmp_path):
    for user, readable in (("secret", False), ("", True)):
        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(["Locked page"]))))
        writer.encrypt(user_password=user, owner_password="owner")
        out = io.BytesIO()
        writer.write(out)
        items = read_all(write(tmp_path, f"locked-{readable}.pdf", out.getvalue()))
        if readable:
            assert [item.body for item in items] == ["Locked page"]
        else:
            (item,) = items
            assert item.reason == Reason.ENCRYPTED and "password" in item.detail


def test_a_password_protected_office_file_is_encrypted_and_a_legacy_one_is_corrupt(tmp_path):
    # Office writes a protected .docx/.xlsx as an OLE compound file with an EncryptedPackage stream
    protected = OLE_MAGIC + bytes(500) + "EncryptedPackage".encode("utf-16-le") + bytes(1500)
    item = only_rejection(write(tmp_path, "locked.xlsx", protected))
    assert item.reason == Reason.ENCRYPTED and "password-protected" in item.detail
    item = only_rejection(write(tmp_path, "old.docx", OLE_MAGIC + bytes(2000)))  # a .doc renamed
    assert item.reason == Reason.CORRUPT_FILE and "save it as .docx" in item.detail


def test_an_encrypted_zip_member_and_a_drm_epub_are_encrypted(tmp_path):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("locked.txt", b"ciphertext")
        archive.writestr("open.txt", b"An open member.")
    data = bytearray(out.getvalue())
    # the encryption bit a password-protecting zip tool sets, in the first member's local and central headers
    data[6] |= 0x1
    data[data.index(b"PK\x01\x02") + 8] |= 0x1
    items = read_all(write(tmp_path, "mixed.zip", bytes(data)))
    assert [(item.source.rpartition("#")[2], getattr(item, "reason", None)) for item in items] == [
        ("locked.txt", Reason.ENCRYPTED),
        ("open.txt", None),
    ]
    encryption = (
        b'<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container"'
        b' xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData><enc:CipherData>'
        b'<enc:CipherReference URI="EPUB/chap_01.xhtml"/></enc:CipherData></enc:EncryptedData></encryption>'
    )
    book = _replace_part(make_epub([("One", ["Text."])], tmp_path / "b.epub"), "META-INF/encryption.xml", encryption)
    item = only_rejection(write(tmp_path, "drm.epub", book))
    assert item.reason == Reason.ENCRYPTED and "DRM" in item.detail
