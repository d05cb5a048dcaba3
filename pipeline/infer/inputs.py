"""Model inputs shared by training and inference, so a model sees at serving time what it was trained on.

concat: `[CLS] text [SEP] passage 1 [SEP] passage 2 ... [SEP]`, where the text and each passage have
their own token budget and the whole never exceeds the model's max length.
"""
from __future__ import annotations

from dataclasses import dataclass

from pipeline.infer.engine import Request


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
            raise ValueError(f"max_length {self.max_length} leaves no room for the text and "
                             f"{self.neighbours} passages; raise it or use fewer neighbours")
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
    tpl = _Template(single=(single[:i], single[i + 1:]), pair=(ids[:j], ids[j + 1:k], ids[k + 1:]),
                    pair_types=(types[0] if j else 0, types[j], types[j + 1] if k > j + 1 else types[j],
                                types[k], types[-1] if k + 1 < len(ids) else types[k]))
    _templates[id(tokenizer)] = (tokenizer, tpl)
    return tpl


def token_ids(tokenizer, texts: list[str], limit: int) -> list[list[int]]:
    if not texts:
        return []
    enc = tokenizer(list(texts), add_special_tokens=False, truncation=True, max_length=max(limit, 1),
                    return_attention_mask=False, return_token_type_ids=False)
    return enc["input_ids"]


def concat_requests(tokenizer, texts: list[str], passages: list[list[str]], layout: ConcatLayout) -> list[Request]:
    """One request per text, its passages appended; passages[i] may hold fewer than layout.neighbours."""
    if len(passages) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(passages)} passage lists")
    text_budget, passage_budget = layout.budgets(tokenizer)
    tpl = _template(tokenizer)
    text_ids = token_ids(tokenizer, texts, text_budget)
    flat = iter(token_ids(tokenizer, [p for group in passages for p in group[:layout.neighbours]], passage_budget))
    sep = tokenizer.sep_token_id
    uses_types = "token_type_ids" in tokenizer.model_input_names
    requests = []
    for ids, group in zip(text_ids, passages):
        tail: list[int] = []
        for _ in group[:layout.neighbours]:
            piece = next(flat)
            if piece:
                tail.extend(([sep] if tail and sep is not None else []) + piece)
        if tail:
            before, between, after = tpl.pair
            full = before + ids + between + tail + after
            t = tpl.pair_types
            types = ([t[0]] * len(before) + [t[1]] * len(ids) + [t[2]] * len(between) + [t[3]] * len(tail)
                     + [t[4]] * len(after))
        else:
            before, after = tpl.single
            full, types = before + ids + after, [0] * (len(before) + len(ids) + len(after))
        if len(full) > layout.max_length:  # a tokenizer with unusual special tokens: never exceed the model
            full, types = full[:layout.max_length - 1] + full[-1:], types[:layout.max_length - 1] + types[-1:]
        requests.append(Request(full, types if uses_types else None))
    return requests


def text_requests(tokenizer, texts: list[str], max_length: int) -> list[Request]:
    return concat_requests(tokenizer, texts, [[] for _ in texts], ConcatLayout(max_length, 0))
