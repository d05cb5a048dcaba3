"""Token-budget packing: requests sorted by length share batches whose padded size stays under a budget.

pack_static is the variant for captured CUDA graphs and statically compiled models: every batch of a width
bucket has the same shape, so a few shapes serve any input.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Request:
    """One tokenised input; token_type_ids only for models that use segments (BERT pairs)."""

    input_ids: list[int]
    token_type_ids: list[int] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)


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

    def add(self, other: PaddingReport) -> None:  # stage seconds of an EngineStats are not carried over
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


# Widths a static batch is padded up to: multiples of 16 keep tensor-core tiles full; the steps grow with the
# width so that padding stays under about 1/8 of a row past 128 tokens.
WIDTH_BUCKETS = (16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 192, 224, 256, 320, 384, 448, 512)


def bucket_width(n: int, buckets: tuple[int, ...] = WIDTH_BUCKETS) -> int:
    """The smallest bucket that holds n tokens; past the last one, n rounded up to a multiple of 64."""
    for width in buckets:
        if n <= width:
            return width
    return -(-n // 64) * 64


def pack_static(
    lengths: list[int], token_budget: int, max_padding: float | None = None
) -> list[tuple[list[int], int, int]]:
    """(request indices, width, rows) per batch: rows x width is the tensor shape, the same for every batch of
    a width bucket (a short last batch is filled up with dummy rows by the collator), and never over the budget.

    Sorted longest first like pack_batches; a bucket's batch also closes when a request would be padded by
    more than max_padding of the width, so the bucket bound does not undo the padding bound.
    """
    if token_budget < 1:
        raise ValueError(f"token_budget must be positive, got {token_budget}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    out: list[tuple[list[int], int, int]] = []
    current: list[int] = []
    width = rows = 0
    for i in order:
        n = max(int(lengths[i]), 1)
        w = bucket_width(n)
        if w > token_budget:
            raise ValueError(
                f"request {i} has {n} tokens, padded to {w}, more than the token budget {token_budget}; "
                "truncate requests to the model's max length and keep the budget above it"
            )
        ragged = max_padding is not None and n < width * (1.0 - max_padding)
        if current and (w != width and ragged or len(current) >= rows):
            out.append((current, width, rows))
            current = []
        if not current:
            width, rows = w, token_budget // w
        current.append(i)
    if current:
        out.append((current, width, rows))
    return out


@dataclass
class EngineStats(PaddingReport):
    """A PaddingReport with the time of each stage of the engine, so a run shows whether the host or the device
    bounds it. Stages overlap (tokenising and collating run in a background thread while the device computes),
    so their sum may exceed `seconds`, the wall time. `starved_seconds` is the time the device loop waited for
    the next collated batch: large means host-bound; near zero means the device (or the copy back) bounds it.
    On CUDA device and copy seconds come from CUDA events; on the CPU they are the forward pass's wall time and
    the scatter of its rows."""

    tokenize_seconds: float = 0.0
    collate_seconds: float = 0.0
    device_seconds: float = 0.0
    copy_seconds: float = 0.0
    starved_seconds: float = 0.0
    graphed_batches: int = 0

    def stages(self) -> dict:
        """Seconds and real tokens/s of each stage, the padding share and which side bounds the run."""
        out: dict = {"wall": {"seconds": round(self.seconds, 4)}}
        for name in ("tokenize", "collate", "device", "copy"):
            seconds = getattr(self, f"{name}_seconds")
            out[name] = {
                "seconds": round(seconds, 4),
                "tokens_per_s": round(self.real_tokens / seconds, 1) if seconds > 0 else None,
            }
        out["wall"]["tokens_per_s"] = round(self.real_tokens / self.seconds, 1) if self.seconds > 0 else None
        out["starved_seconds"] = round(self.starved_seconds, 4)
        out["padding_share"] = round(self.padding_waste, 4)
        out["graphed_batches"] = self.graphed_batches
        out["bound"] = self.bound
        return out

    @property
    def bound(self) -> str:
        """host when the device loop waited for batches a tenth of the time or more, else device."""
        return "host" if self.seconds > 0 and self.starved_seconds >= 0.1 * self.seconds else "device"
