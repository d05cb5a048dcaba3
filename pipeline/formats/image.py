"""Images (a photographed or scanned page: PNG, JPEG, TIFF, BMP, GIF, WebP) read by Tesseract OCR.

A multi-page TIFF is a paged document as a PDF is: its pages are joined by the PDF's page break, so chunks name
their pages. Other formats read their first frame only (an animation's later frames are not pages).
"""

from __future__ import annotations

import io
import struct
import warnings

from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

from pipeline.errors import InputError, Reason
from pipeline.formats.common import one_line
from pipeline.formats.ocr import INSTALL_HINT, ocr_enabled, ocr_image, ocr_languages, tesseract_path
from pipeline.formats.pdf import PAGE_BREAK
from pipeline.types import RawDocument

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"})
# A page scanned at 600 dpi is 35 megapixels (A4) to 70 (A3); more is no page, and Pillow would hold it decoded.
MAX_PIXELS = 100_000_000
_MAX_SIDE_PX = 32_767  # Tesseract refuses a longer side ("Image too large")
_PAGED_FORMATS = ("TIFF",)
# Pillow reports a truncated, malformed or unsupported image through any of these, depending on the codec.
_IMAGE_ERRORS = (
    UnidentifiedImageError,
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    TypeError,  # "Missing dimensions": a TIFF page header without a size
    LookupError,
    ZeroDivisionError,
    struct.error,
    Image.DecompressionBombError,
)


def _check_size(width: int, height: int) -> None:
    if max(width, height) > _MAX_SIDE_PX:
        raise InputError(
            Reason.TOO_LARGE, f"image is {width}x{height} pixels; Tesseract reads sides up to {_MAX_SIDE_PX}"
        )
    if width * height > MAX_PIXELS:
        raise InputError(
            Reason.TOO_LARGE, f"image is {width}x{height} pixels, more than {MAX_PIXELS:,} (no page is that large)"
        )


def read_image(data: bytes, source: str) -> RawDocument:
    try:
        with warnings.catch_warnings():  # the size is checked below, against a limit of our own
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
        image_format, (width, height) = image.format, image.size
    except _IMAGE_ERRORS as exc:
        raise InputError(Reason.CORRUPT_FILE, one_line(f"unreadable image: {type(exc).__name__}: {exc}")) from None
    _check_size(width, height)
    if not ocr_enabled():
        raise InputError(Reason.EMPTY, "an image holds text only for OCR, and DOCPIPE_OCR is off")
    if tesseract_path() is None:
        raise InputError(Reason.NEEDS_OCR, f"an image holds text only for OCR; {INSTALL_HINT}")
    languages = ocr_languages()
    pages: list[str] = []
    frames = iter(ImageSequence.Iterator(image) if image_format in _PAGED_FORMATS else [image])
    while True:
        number = len(pages) + 1
        try:
            frame = next(frames, None)  # a TIFF seeks to its next page here: a broken one fails here
            if frame is None:
                break
            _check_size(*frame.size)  # every page of a TIFF has a size of its own
            frame.load()  # decoded here, so that a truncated file is corrupt, not an OCR failure
            upright = ImageOps.exif_transpose(frame)  # a phone's photo of a page, turned as it was taken
        except _IMAGE_ERRORS as exc:
            raise InputError(
                Reason.CORRUPT_FILE, one_line(f"unreadable image, page {number}: {type(exc).__name__}: {exc}")
            ) from None
        pages.append(ocr_image(upright, f"page {number}", languages))
    if not any(pages):
        raise InputError(Reason.EMPTY, f"OCR found no text in the image ({len(pages)} page(s))")
    metadata = {"pages": len(pages), "ocr_pages": len(pages), "image_format": image_format}
    metadata.update(width=width, height=height)
    return RawDocument(source=source, body=PAGE_BREAK.join(pages), content_type="image", metadata=metadata)
