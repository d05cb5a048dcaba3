"""Counting a prompt's tokens: with the generator's own tokenizer where docpipe has it (a local model, or
DOCPIPE_GENERATOR_TOKENIZER for a remote one), else with the encoder's as an approximation.

A remote server applies its own chat template, which docpipe cannot see: such a count adds a few tokens per
message for the template and keeps a tenth of the budget spare for the difference between tokenizers.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

log = logging.getLogger(__name__)

# per message and per reply, the overhead of common chat templates (role markers, separators)
MESSAGE_OVERHEAD = 4
REPLY_OVERHEAD = 3
APPROXIMATE_SPARE = 0.1

_tokenizers: dict[str, object] = {}
_lock = threading.Lock()


def load_tokenizer(path: str | Path):
    """One tokenizer per folder and process (the API counts every question's prompt)."""
    key = str(Path(path).resolve())
    with _lock:
        found = _tokenizers.get(key)
    if found is None:
        from transformers import AutoTokenizer

        found = AutoTokenizer.from_pretrained(key, local_files_only=True)
        with _lock:
            _tokenizers[key] = found
    return found


def render_text(tokenizer, messages: list[dict]) -> str:
    """The text a local causal LM is given: its chat template where it has one, else a plain layout that
    any base model can continue (the counter and the worker both render it here, so their counts agree)."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    parts = [m["content"].strip() for m in messages]
    return "\n\n".join(parts) + "\n"


def prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    """The token ids of the rendered conversation; a chat template writes its own special tokens."""
    templated = bool(getattr(tokenizer, "chat_template", None))
    text = render_text(tokenizer, messages)
    return list(tokenizer(text, add_special_tokens=not templated, verbose=False)["input_ids"])


class TokenCounter:
    """Counts text and whole conversations in one tokenizer's tokens.

    exact: the conversation is rendered as the local model gets it (render_text); otherwise the count is an
    approximation (another model's tokenizer, a remote chat template) and `usable` keeps a spare share.
    """

    def __init__(self, tokenizer, exact: bool):
        self.tokenizer = tokenizer
        self.exact = exact

    def count(self, text: str) -> int:
        # verbose=False: the encoder's tokenizer would warn that a prompt exceeds its own 512-token limit
        return len(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def count_messages(self, messages: list[dict]) -> int:
        if self.exact:
            return len(prompt_ids(self.tokenizer, messages))
        return sum(self.count(m["content"]) + MESSAGE_OVERHEAD for m in messages) + REPLY_OVERHEAD

    def usable(self, tokens: int) -> int:
        """Of a budget of `tokens`, what a prompt may take."""
        return tokens if self.exact else int(tokens * (1 - APPROXIMATE_SPARE))

    def truncate(self, text: str, tokens: int) -> str:
        """The longest whole-word prefix of `text` within `tokens` tokens."""
        words = text.split()
        lo, hi = 0, len(words)
        while lo < hi:  # binary search over prefixes: O(log n) counts, whatever the tokenizer
            mid = (lo + hi + 1) // 2
            if self.count(" ".join(words[:mid])) <= tokens:
                lo = mid
            else:
                hi = mid - 1
        return " ".join(words[:lo])


def local_context_tokens(model_path: str | Path, configured: int) -> int:
    """The context window of a local model: the configured one, capped by the model's position embeddings."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(model_path), local_files_only=True)
    limits = [getattr(config, name, None) for name in ("max_position_embeddings", "n_positions", "max_sequence_length")]
    known = [int(v) for v in limits if isinstance(v, int) and v > 0]
    return min([configured, *known])
