"""The passages an answer rests on: retrieved chunks, numbered as the prompt and the citations number them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from elasticsearch import NotFoundError

from pipeline.index import DEFAULT_FUSION, Fusion, Hit
from pipeline.retrieve import search


@dataclass
class Passage:
    number: int  # [number] in the prompt and in the answer, 1-based
    chunk_id: str
    doc_id: str
    source: str
    ordinal: int
    text: str
    title: str | None = None
    score: float = 0.0
    pages: list[int] = field(default_factory=list)  # pages of the source the chunk spans, when its format has pages

    @classmethod
    def from_hit(cls, number: int, hit: Hit) -> Passage:
        # `pages` arrives on hits of formats with pages (PDF); older hits and indices have none
        pages = getattr(hit, "pages", None) or []
        return cls(
            number=number,
            chunk_id=hit.chunk_id,
            doc_id=hit.doc_id,
            source=hit.source,
            ordinal=hit.ordinal,
            text=hit.text,
            title=hit.title,
            score=hit.score,
            pages=[int(p) for p in pages],
        )

    def where(self) -> str:
        """Where the passage comes from, as one line: source, chunk and page."""
        parts = [self.source or self.doc_id, f"chunk {self.ordinal}"]
        if self.pages:
            first, last = min(self.pages), max(self.pages)
            parts.append(f"p. {first}" if first == last else f"pp. {first}-{last}")
        return " · ".join(parts)

    def citation(self) -> dict:
        """What an answer's [n] refers to (the text left out: the passages event carries it)."""
        out = asdict(self)
        out.pop("text")
        out["page"] = min(self.pages) if self.pages else None
        return out

    def as_dict(self) -> dict:
        return {**self.citation(), "text": self.text}


def retrieve(
    es,
    index: str,
    tenant: str,
    question: str,
    k: int,
    encoder,
    filters: list[dict] | None = None,
    fusion: Fusion = DEFAULT_FUSION,
    server_rrf: bool = False,
) -> list[Passage]:
    """The tenant's top k chunks for the question by hybrid search with its tuned fusion, numbered 1..k."""
    try:
        hits = search(
            es, index, tenant, question, "hybrid", k, encoder, filters=filters, server_rrf=server_rrf, fusion=fusion
        )
    except NotFoundError:
        return []  # nothing was ever indexed: no index behind the read alias yet
    return [Passage.from_hit(n, hit) for n, hit in enumerate(hits, start=1)]


def renumber(passages: list[Passage]) -> list[Passage]:
    """The same passages numbered 1..n in their order (after some were dropped)."""
    return [Passage(**{**p.__dict__, "number": n}) for n, p in enumerate(passages, start=1)]
