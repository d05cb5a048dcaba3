"""Tesseract OCR, shared by scanned PDF pages and image files: whether it may run, and the text of one image."""

from __future__ import annotations

import os
import re
import shutil
from functools import lru_cache

import pytesseract
from PIL import Image

from pipeline.errors import InputError, Reason
from pipeline.formats.common import one_line

_OCR_TIMEOUT_S = 120  # one image; a task's soft time limit bounds the file
_OCR_OFF = ("off", "0", "false", "no")
_MIN_SIDE_PX = 16  # rules, bullets and icons: too small for a line of text
_LANGUAGE = re.compile(r"[a-z]{3}(?:_[a-z]+)*", re.IGNORECASE)  # Tesseract's names: eng, deu, chi_sim, ...
INSTALL_HINT = "install Tesseract (Debian: apt-get install tesseract-ocr) to OCR it, or set DOCPIPE_OCR=off to skip"


def tesseract_path() -> str | None:
    """The tesseract binary pytesseract will run, or None: OCR is optional at install time."""
    return shutil.which("tesseract")


def ocr_enabled() -> bool:
    # DOCPIPE_OCR=off skips image-only pages on hosts that cannot or should not run Tesseract.
    return os.environ.get("DOCPIPE_OCR", "").strip().lower() not in _OCR_OFF


def ocr_languages() -> str:
    """DOCPIPE_OCR_LANGUAGES as Tesseract's `-l` takes it ("eng", "eng+deu"), each language checked against the
    data Tesseract has: a missing one makes the file a needs_ocr dead letter that says what to install."""
    raw = os.environ.get("DOCPIPE_OCR_LANGUAGES", "").strip() or "eng"
    wanted = [name.strip() for name in re.split(r"[+,\s]+", raw) if name.strip()]
    bad = [name for name in wanted if not _LANGUAGE.fullmatch(name)]
    if bad or not wanted:
        raise InputError(
            Reason.NEEDS_OCR, f"DOCPIPE_OCR_LANGUAGES={raw!r} is not a list of Tesseract languages such as eng+deu"
        )
    missing = [name for name in wanted if name not in _installed_languages()]
    if missing:
        packages = " ".join(f"tesseract-ocr-{name.replace('_', '-').lower()}" for name in missing)
        raise InputError(
            Reason.NEEDS_OCR,
            f"Tesseract has no data for {', '.join(missing)} (DOCPIPE_OCR_LANGUAGES): install it (Debian: "
            f"apt-get install {packages}) or change the setting",
        )
    return "+".join(wanted)


@lru_cache(maxsize=4)
def _installed(binary: str) -> frozenset[str]:
    del binary  # the cache key: another binary on PATH may have other data
    try:
        return frozenset(pytesseract.get_languages())
    except (RuntimeError, OSError):  # TesseractError, a binary that cannot run
        return frozenset()


def _installed_languages() -> frozenset[str]:
    return _installed(tesseract_path() or "")


def ocr_image(image: Image.Image, where: str, languages: str = "eng") -> str:
    """The text Tesseract reads in one decoded image; "" for an image too small to hold a line of text.
    `where` names the image in the error ("page 3"); `languages` as ocr_languages() gives them."""
    if min(image.size) < _MIN_SIDE_PX:
        return ""
    if image.mode not in ("1", "L", "RGB"):
        image = image.convert("RGB")  # CMYK, palettes, 16-bit and alpha: Tesseract reads these as grey or RGB
    try:
        return pytesseract.image_to_string(image, lang=languages, timeout=_OCR_TIMEOUT_S).strip()
    except (RuntimeError, OSError) as exc:  # TesseractError, its timeout, a binary that went away
        raise InputError(Reason.READER_ERROR, one_line(f"OCR failed on {where}: {exc}")) from None
