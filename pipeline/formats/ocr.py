"""Tesseract OCR, shared by scanned PDF pages and image files: whether it may run, and the text of one image."""

from __future__ import annotations

import os
import shutil

import pytesseract
from PIL import Image

from pipeline.errors import InputError, Reason
from pipeline.formats.common import one_line

_OCR_TIMEOUT_S = 120  # one image; a task's soft time limit bounds the file
_OCR_OFF = ("off", "0", "false", "no")
_MIN_SIDE_PX = 16  # rules, bullets and icons: too small for a line of text
INSTALL_HINT = "install Tesseract (Debian: apt-get install tesseract-ocr) to OCR it, or set DOCPIPE_OCR=off to skip"


def tesseract_path() -> str | None:
    """The tesseract binary pytesseract will run, or None: OCR is optional at install time."""
    return shutil.which("tesseract")


def ocr_enabled() -> bool:
    # DOCPIPE_OCR=off skips image-only pages on hosts that cannot or should not run Tesseract.
    return os.environ.get("DOCPIPE_OCR", "").strip().lower() not in _OCR_OFF


def ocr_image(image: Image.Image, where: str) -> str:
    """The text Tesseract reads in one decoded image; "" for an image too small to hold a line of text.
    `where` names the image in the error ("page 3")."""
    if min(image.size) < _MIN_SIDE_PX:
        return ""
    if image.mode not in ("1", "L", "RGB"):
        image = image.convert("RGB")  # CMYK, palettes, 16-bit and alpha: Tesseract reads these as grey or RGB
    try:
        return pytesseract.image_to_string(image, timeout=_OCR_TIMEOUT_S).strip()
    except (RuntimeError, OSError) as exc:  # TesseractError, its timeout, a binary that went away
        raise InputError(Reason.READER_ERROR, one_line(f"OCR failed on {where}: {exc}")) from None
