"""Retrieval-augmented answers: passages retrieved by hybrid search, a prompt within the generator's context,
an answer that cites its passages by number, and its evaluation."""

from pipeline.answer.ask import Answer, ExtractiveWriter, GeneratedWriter, QuestionRefused, Writer, ask, collect
from pipeline.answer.passages import Passage, retrieve
from pipeline.answer.setup import generator_kind, make_writer

__all__ = [
    "Answer",
    "ExtractiveWriter",
    "GeneratedWriter",
    "Passage",
    "QuestionRefused",
    "Writer",
    "ask",
    "collect",
    "generator_kind",
    "make_writer",
    "retrieve",
]
