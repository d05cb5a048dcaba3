"""Model inputs shared by training and inference, so a model sees at serving time what it was trained on.

concat: `[CLS] text [SEP] passage 1 [SEP] passage 2 ... [SEP]`, where the text and each passage have
their own token budget and the whole never exceeds the model's max length.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.infer.batching import Request


@dataclass(frozen=True)
class ConcatLayout:
    max_length: int
    neighbours: int
    text_share: float = 0.5  # of the tokens left after special tokens

    def budgets(self, tokenizer) -> tuple[int, int]:
        """(text tokens, tokens per passage) for this tokenizer's special tokens."""
        if self.neighbours <= 0:
            return self.max_length - tokenizer.num_special_tokens_to_add(pair=False), 0
        separators = self.neighbours - 1  # one between consecutive passages
        available = self.max_length - tokenizer.num_special_tokens_to_add(pair=True) - separators
        if available < 2 * self.neighbours:
            raise ValueError(
                f"max_length {self.max_length} leaves no room for the text and "
                f"{self.neighbours} passages; raise it or use fewer neighbours"
            )
        text = max(1, int(available * self.text_share))
        return text, max(1, (available - text) // self.neighbours)


@dataclass(frozen=True)
class _Template:
    """Where a tokenizer puts its special tokens around one text, or a pair: learnt from a probe."""

    single: tuple[list[int], list[int]]  # ids before, after
    pair: tuple[list[int], list[int], list[int]]  # before, between, after
    pair_types: tuple[int, int, int, int, int]  # type ids of: before, first, between, second, after


# holding the tokenizer keeps its id from being reused by another one
_templates: dict[int, tuple[object, _Template]] = {}


def _template(tokenizer) -> _Template:
    cached = _templates.get(id(tokenizer))
    if cached is not None:
        return cached[1]
    a, b = (tokenizer.convert_tokens_to_ids(t) for t in ("a", "b"))
    single = tokenizer("a", add_special_tokens=True)["input_ids"]
    pair = tokenizer("a", "b", add_special_tokens=True, return_token_type_ids=True)
    ids, types = pair["input_ids"], pair.get("token_type_ids") or [0] * len(pair["input_ids"])
    i, j = single.index(a), ids.index(a)
    k = ids.index(b, j + 1)
    tpl = _Template(
        single=(single[:i], single[i + 1 :]),
        pair=(ids[:j], ids[j + 1 : k], ids[k + 1 :]),
        pair_types=(
            types[0] if j else 0,
            types[j],
            types[j + 1] if k > j + 1 else types[j],
            types[k],
            types[-1] if k + 1 < len(ids) else types[k],
        ),
    )
    _templates[id(tokenizer)] = (tokenizer, tpl)
    return tpl


# Only a text's head is tokenised: a 256-token input needs about 1,100 characters of English, and
# normalising and splitting a whole article costs the host more than the GPU's forward pass over it.
HEAD_CHARS_PER_TOKEN = 8


def _encode(tokenizer, texts: list[str], limit: int) -> list[list[int]]:
    return tokenizer(
        texts,
        add_special_tokens=False,
        truncation=True,
        max_length=limit,
        return_attention_mask=False,
        return_token_type_ids=False,
    )["input_ids"]


def text_head(text: str, chars: int) -> str:
    """The text up to the end of the last word that starts before `chars` (the whole text if no
    whitespace falls inside). Cut between words, the head's tokens are the full text's first tokens."""
    if len(text) <= chars:
        return text
    cut = max(text.rfind(ws, 0, chars) for ws in " \n\t\r")
    return text[:cut].rstrip() if cut > 0 else text


def token_ids(tokenizer, texts: list[str], limit: int) -> list[list[int]]:
    """The first `limit` token ids of each text (no special tokens), as a full tokenisation gives them.

    Tokenisers that split words at whitespace first (WordPiece, byte-level BPE, SentencePiece's
    Metaspace) get only each text's head; a head that yields fewer than `limit` tokens (long runs of
    symbols, very long words) is tokenised again whole, so the ids never differ from the full text's.
    """
    if not texts:
        return []
    limit = max(limit, 1)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or backend.pre_tokenizer is None:
        return _encode(tokenizer, list(texts), limit)
    heads = [text_head(t, limit * HEAD_CHARS_PER_TOKEN) for t in texts]
    ids = _encode(tokenizer, heads, limit)
    short = [i for i, (text, head) in enumerate(zip(texts, heads)) if len(head) < len(text) and len(ids[i]) < limit]
    if short:
        for i, full in zip(short, _encode(tokenizer, [texts[i] for i in short], limit)):
            ids[i] = full
    return ids


def concat_requests(tokenizer, texts: list[str], passages: list[list[str]], layout: ConcatLayout) -> list[Request]:
    """One request per text, its passages appended; passages[i] may hold fewer than layout.neighbours."""
    if len(passages) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(passages)} passage lists")
    text_budget, passage_budget = layout.budgets(tokenizer)
    tpl = _template(tokenizer)
    text_ids = token_ids(tokenizer, texts, text_budget)
    flat = iter(token_ids(tokenizer, [p for group in passages for p in group[: layout.neighbours]], passage_budget))
    sep = tokenizer.sep_token_id
    uses_types = "token_type_ids" in tokenizer.model_input_names
    requests = []
    for ids, group in zip(text_ids, passages):
        tail: list[int] = []
        for _ in group[: layout.neighbours]:
            piece = next(flat)
            if piece:
                tail.extend(([sep] if tail and sep is not None else []) + piece)
        if tail:
            before, between, after = tpl.pair
            full = before + ids + between + tail + after
            t = tpl.pair_types
            types = (
                [t[0]] * len(before)
                + [t[1]] * len(ids)
                + [t[2]] * len(between)
                + [t[3]] * len(tail)
                + [t[4]] * len(after)
            )
        else:
            before, after = tpl.single
            full, types = before + ids + after, [0] * (len(before) + len(ids) + len(after))
        if len(full) > layout.max_length:  # a tokenizer with unusual special tokens: never exceed the model
            full, types = full[: layout.max_length - 1] + full[-1:], types[: layout.max_length - 1] + types[-1:]
        requests.append(Request(full, types if uses_types else None))
    return requests


def text_requests(tokenizer, texts: list[str], max_length: int) -> list[Request]:
    return concat_requests(tokenizer, texts, [[] for _ in texts], ConcatLayout(max_length, 0))
