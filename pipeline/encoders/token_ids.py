"""Token ids kept from chunking (tokenise once): how they are stored on a chunk row, and which tokenizers allow it.

The ingest queue already runs the encoder's tokenizer over every document to cut chunks; the gpu queue used to
tokenise every chunk's text again. A chunk row now carries its content ids (no special tokens) in a compact blob:

    byte 0       width of one id in bytes (2 or 4), little-endian unsigned
    bytes 1-8    the tokenizer's tag (tokenizer_tag): ids are only ever fed to a model whose tokenizer has the same tag
    bytes 9-     the ids

A slice of a document's ids equals the ids of the slice's text tokenised alone only when the tokenizer splits words
the same way whatever surrounds them: WordPiece behind whitespace/punctuation pre-tokenisation and per-character
normalisation (BERT, MiniLM and their kin). For any other tokenizer chunking keeps no ids and the encoder
tokenises the text, as before.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# pre-tokenisers that split at whitespace and punctuation with no memory of what came before a split
_CONTEXT_FREE_PRE = frozenset({"BertPreTokenizer", "Whitespace", "WhitespaceSplit"})
# normalisers that act on each character (or combining sequence) alone
_LOCAL_NORMALIZERS = frozenset({"BertNormalizer", "Lowercase", "StripAccents", "NFD", "NFKD", "NFC", "NFKC", "Strip"})
_HEADER = 9


@dataclass(frozen=True)
class TokenizerInfo:
    tag: bytes  # 8 bytes: changes when the ids a text gets could change
    exact_slices: bool  # a slice of a text's ids (cut between words) is the ids of that slice's text
    before: tuple[int, ...] = ()  # the special tokens put before and after one text's ids ([CLS] ... [SEP])
    after: tuple[int, ...] = ()


# holding the tokenizer keeps its id() from being reused by another one while it is cached
_infos: dict[int, tuple[object, TokenizerInfo]] = {}
_CACHED = 16


def _kinds(component: dict | None, key: str) -> list[str]:
    if not component:
        return []
    if component.get("type") == "Sequence":
        return [k for part in component.get(key) or [] for k in _kinds(part, key)]
    return [str(component.get("type"))]


def _state(component) -> bytes:
    return b"" if component is None else bytes(component.__getstate__())


def _wrap(tokenizer) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Where the tokenizer puts its special tokens around one text, learnt from a probe."""
    content = list(tokenizer("a", add_special_tokens=False)["input_ids"])
    full = list(tokenizer("a", add_special_tokens=True)["input_ids"])
    for i in range(len(full) - len(content) + 1):
        if full[i : i + len(content)] == content:
            return tuple(full[:i]), tuple(full[i + len(content) :])
    return (), ()


def tokenizer_info(tokenizer) -> TokenizerInfo:
    """What a fast tokenizer does to a text, as a tag, and whether chunking may keep slices of its ids."""
    cached = _infos.get(id(tokenizer))
    if cached is not None:
        return cached[1]
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:  # a slow tokenizer: nothing to describe it by, so nothing is kept
        info = TokenizerInfo(b"\0" * 8, False)
    else:
        # each component's own serialisation: the whole tokenizer's (to_str) also holds the truncation and padding
        # that calls write into it, which say nothing about the ids a text gets
        parts = [_state(backend.normalizer), _state(backend.pre_tokenizer), _state(backend.model)]
        added = sorted((i, t.content) for i, t in backend.get_added_tokens_decoder().items())
        digest = hashlib.sha256(b"\n".join([*parts, json.dumps(added).encode("utf-8")]))
        pre = _kinds(json.loads(parts[1] or b"null"), "pretokenizers")
        norm = _kinds(json.loads(parts[0] or b"null"), "normalizers")
        exact = (
            type(backend.model).__name__ == "WordPiece"
            and bool(pre)
            and all(k in _CONTEXT_FREE_PRE for k in pre)
            and all(k in _LOCAL_NORMALIZERS for k in norm)
        )
        info = TokenizerInfo(digest.digest()[:8], exact, *_wrap(tokenizer))
    if len(_infos) >= _CACHED:
        _infos.pop(next(iter(_infos)))
    _infos[id(tokenizer)] = (tokenizer, info)
    return info


def pack(ids, tag: bytes) -> bytes:
    """The stored form of one chunk's content ids."""
    array = np.asarray(ids, dtype=np.int64)
    if len(tag) != 8:
        raise ValueError(f"a tokenizer tag is 8 bytes, got {len(tag)}")
    if array.size and (array.min() < 0 or array.max() >= 2**32):
        raise ValueError("token ids must lie in 0..2**32-1")
    width = 2 if not array.size or array.max() < 2**16 else 4
    return bytes([width]) + tag + array.astype("<u2" if width == 2 else "<u4").tobytes()


def unpack(blob: bytes | None, tag: bytes) -> np.ndarray | None:
    """The ids stored in `blob` when they were made by a tokenizer with `tag`; None otherwise (then the caller
    tokenises the text)."""
    if not blob or len(blob) < _HEADER or blob[1:_HEADER] != tag or blob[0] not in (2, 4):
        return None
    body = memoryview(blob)[_HEADER:]
    if len(body) % blob[0]:
        return None
    return np.frombuffer(body, dtype="<u2" if blob[0] == 2 else "<u4").astype(np.int64)


def encode_mixed(
    texts: list[str],
    token_ids: list[np.ndarray | None],
    by_texts: Callable[[list[str]], np.ndarray],
    by_ids: Callable[[list[np.ndarray]], np.ndarray],
) -> np.ndarray:
    """Row i from by_ids for the rows that have token ids, from by_texts for the others, in the order of `texts`."""
    if len(token_ids) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(token_ids)} token id rows")
    with_ids = [i for i, ids in enumerate(token_ids) if ids is not None]
    if not with_ids:
        return by_texts(texts)
    rest = [i for i, ids in enumerate(token_ids) if ids is None]
    first = by_ids([ids for ids in token_ids if ids is not None])
    out = np.empty((len(texts), first.shape[1]), dtype=np.float32)
    out[with_ids] = first
    if rest:
        out[rest] = by_texts([texts[i] for i in rest])
    return out


def model_inputs(
    rows: list[list[int]], info: TokenizerInfo, max_length: int, pad_token_id: int
) -> tuple[np.ndarray, np.ndarray]:
    """input_ids and attention_mask of one batch of content ids, as the tokenizer gives them for the texts with
    truncation to max_length and padding to the longest: the special tokens around each row, its own ids cut to
    fit."""
    room = max(max_length - len(info.before) - len(info.after), 1)
    wrapped = [[*info.before, *row[:room], *info.after] for row in rows]
    width = max((len(r) for r in wrapped), default=0)
    input_ids = np.full((len(rows), width), pad_token_id, dtype=np.int64)
    attention_mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(wrapped):
        input_ids[i, : len(r)] = r
        attention_mask[i, : len(r)] = 1
    return input_ids, attention_mask
