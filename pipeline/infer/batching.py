"""Token-budget packing: requests sorted by length share batches whose padded size stays under a budget."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PaddingReport:
    """What a run cost in tokens: real ones versus the padded rectangles actually computed."""

    sequences: int = 0
    batches: int = 0
    real_tokens: int = 0
    padded_tokens: int = 0
    seconds: float = 0.0
    batch_sizes: list[int] = field(default_factory=list)

    @property
    def padding_waste(self) -> float:
        """Share of computed positions that were padding (0 = none wasted)."""
        return 1.0 - self.real_tokens / self.padded_tokens if self.padded_tokens else 0.0

    def add(self, other: PaddingReport) -> None:
        self.sequences += other.sequences
        self.batches += other.batches
        self.real_tokens += other.real_tokens
        self.padded_tokens += other.padded_tokens
        self.seconds += other.seconds
        self.batch_sizes.extend(other.batch_sizes)

    def as_dict(self) -> dict:
        return {
            "sequences": self.sequences,
            "batches": self.batches,
            "real_tokens": self.real_tokens,
            "padded_tokens": self.padded_tokens,
            "padding_waste": round(self.padding_waste, 4),
            "seconds": round(self.seconds, 4),
        }


def pack_batches(
    lengths: list[int], token_budget: int, max_batch: int | None = None, max_padding: float | None = None
) -> list[list[int]]:
    """Group request indices into batches; each batch's padded size (rows x longest) is <= token_budget.

    Longest first, so every batch is padded only up to its own first member and neighbours in a
    batch have similar lengths. Ties keep request order, which makes the packing deterministic.
    max_padding bounds the padding of any row, as a share of its batch's width: a large budget
    would otherwise pack a 120-token and a 40-token request together.
    """
    if token_budget < 1:
        raise ValueError(f"token_budget must be positive, got {token_budget}")
    if max_batch is not None and max_batch < 1:
        raise ValueError(f"max_batch must be positive, got {max_batch}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    width = 0
    for i in order:
        n = max(int(lengths[i]), 1)  # an empty request still occupies a row
        if n > token_budget:
            raise ValueError(
                f"request {i} has {n} tokens, more than the token budget {token_budget}; "
                "truncate requests to the model's max length and keep the budget above it"
            )
        full = max_batch is not None and len(current) >= max_batch
        ragged = max_padding is not None and n < width * (1.0 - max_padding)
        if current and (full or ragged or (len(current) + 1) * width > token_budget):
            batches.append(current)
            current = []
        if not current:
            width = n  # sorted descending: the first member is the longest
        current.append(i)
    if current:
        batches.append(current)
    return batches


def padded_size(lengths: list[int], batch: list[int]) -> int:
    return len(batch) * max(max(int(lengths[i]), 1) for i in batch)
