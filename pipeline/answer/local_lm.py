"""A local Hugging Face causal LM that writes answers: one prompt streamed token by token, or many prompts
generated in batches packed by the inference engine's token budget (left-padded, as decoder-only models need).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from pipeline.answer.tokens import prompt_ids
from pipeline.devices import resolve_device
from pipeline.errors import ConfigError
from pipeline.infer.batching import pack_batches
from pipeline.infer.engine import default_token_budget, for_inference

_CACHE_SIZE = 2
_cache: OrderedDict[tuple[str, str, int], LocalLM] = OrderedDict()
_lock = threading.Lock()


class _Relay:
    """A transformers streamer: hands each finished piece of decoded text to `emit` as generate produces it.

    Decodes the whole answer so far and emits what grew, so a word cut across sub-word tokens comes out whole.
    """

    def __init__(self, tokenizer, emit: Callable[[str], None]):
        self.tokenizer, self.emit = tokenizer, emit
        self.ids: list[int] = []
        self.sent = 0
        self.prompt_seen = False

    def put(self, value) -> None:
        if not self.prompt_seen:  # generate first hands over the prompt itself
            self.prompt_seen = True
            return
        self.ids.extend(int(x) for x in value.reshape(-1).tolist())
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        # hold back a trailing replacement character: the rest of a multi-byte character is still to come
        if text.endswith("\ufffd"):
            return
        if len(text) > self.sent:
            self.emit(text[self.sent :])
            self.sent = len(text)

    def end(self) -> None:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if len(text) > self.sent:
            self.emit(text[self.sent :])
            self.sent = len(text)


class LocalLM:
    def __init__(self, folder: str | Path, device: str = "auto", token_budget: int = 0):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.folder = str(folder)
        self.device = resolve_device(device)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.folder, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(self.folder, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.folder} is not a causal language model folder: {exc}") from None
        self.model = for_inference(model, self.device)
        self.tokenizer.padding_side = "left"  # new tokens follow every prompt's last token directly
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
        self.eos_id = self.tokenizer.eos_token_id
        if self.eos_id is None:
            self.eos_id = getattr(self.model.generation_config, "eos_token_id", None)
        self.token_budget = token_budget or default_token_budget(self.device)

    def _generate_args(self, max_tokens: int, temperature: float) -> dict:
        args: dict = {"max_new_tokens": max_tokens, "pad_token_id": self.pad_id, "eos_token_id": self.eos_id}
        if temperature > 0:
            args.update(do_sample=True, temperature=temperature)
        else:
            args.update(do_sample=False)
        return args

    def stream(
        self, messages: list[dict], max_tokens: int, emit: Callable[[str], None], temperature: float = 0.0
    ) -> str:
        """Generates the answer to one conversation, handing each new piece of text to `emit`; returns it all."""
        import torch

        ids = torch.tensor([prompt_ids(self.tokenizer, messages)], device=self.device)
        relay = _Relay(self.tokenizer, emit)
        with torch.inference_mode():
            self.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                streamer=relay,
                **self._generate_args(max_tokens, temperature),
            )
        return str(self.tokenizer.decode(relay.ids, skip_special_tokens=True))

    def complete_many(
        self,
        conversations: list[list[dict]],
        max_tokens: int,
        temperature: float = 0.0,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[str]:
        """Answers in conversation order; batches packed so that rows x (longest prompt + max_tokens) stays
        within the token budget, sorted by length so that little of each batch is padding."""
        import torch

        prompts = [prompt_ids(self.tokenizer, m) for m in conversations]
        lengths = [len(p) + max_tokens for p in prompts]
        budget = max(self.token_budget, max(lengths, default=1))  # one longest request must always fit
        out = [""] * len(prompts)
        done = 0
        for batch in pack_batches(lengths, budget, max_padding=0.5):
            width = max(len(prompts[i]) for i in batch)
            ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                n = len(prompts[i])
                ids[row, width - n :] = torch.tensor(prompts[i])
                mask[row, width - n :] = 1
            with torch.inference_mode():
                generated = self.model.generate(
                    input_ids=ids.to(self.device),
                    attention_mask=mask.to(self.device),
                    **self._generate_args(max_tokens, temperature),
                )
            for row, i in enumerate(batch):
                out[i] = str(self.tokenizer.decode(generated[row, width:].tolist(), skip_special_tokens=True))
            done += len(batch)
            if on_batch is not None:
                on_batch(done)
        return out


def get_local_lm(folder: str | Path, device: str = "auto", token_budget: int = 0) -> LocalLM:
    """The process's loaded model for this folder: a gpu worker loads each generator once."""
    key = (str(Path(folder).resolve()), device, token_budget)
    with _lock:
        found = _cache.get(key)
        if found is not None:
            _cache.move_to_end(key)
            return found
    found = LocalLM(key[0], device, token_budget)
    with _lock:
        _cache[key] = found
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return found
