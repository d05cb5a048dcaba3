"""Reading input files into RawDocuments; every problem becomes a Rejected, never an exception.

files: walking folders, reading bytes, dispatch by suffix; common: decoding, dates, archive checks, markup to
text; records: JSON, JSON Lines, CSV; pdf: PDF and OCR; office: DOCX, PPTX, XLSX, RTF; odf: ODT, ODS;
epub: EPUB; mail: EML and its attachments.
"""

from pipeline.formats.common import parse_datetime
from pipeline.formats.files import SUPPORTED_SUFFIXES, iter_files, read_path
from pipeline.formats.records import SOURCE_FIELDS, TEXT_FIELDS

__all__ = ["SOURCE_FIELDS", "SUPPORTED_SUFFIXES", "TEXT_FIELDS", "iter_files", "parse_datetime", "read_path"]
