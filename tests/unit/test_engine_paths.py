"""The engine's pipelined paths (background collation, streamed texts, pre-tokenised ids, static shapes) give
the rows of its first, inline path, in request order, and account for every token."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from pipeline.infer.collate import TokenBlock, gather, special_tokens
from pipeline.infer.engine import InferenceEngine, Request, collate, tokenize
from pipeline.infer.inputs import text_requests, token_ids
from tests.ml_support import tiny_bert, tiny_bert_config, tokenizer  # noqa: F401  (fixtures)

WORDS = "river bridge train market share goal league study telescope the a of and to in".split()


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.choice([1, 3, 9, 20, 45, 80]))) for _ in range(n)]


class _Echo(torch.nn.Module):
    """Row = (sum of real ids, real length, extra), and the shape of every batch it saw."""

    def __init__(self):
        super().__init__()
        self.shapes: list[tuple[int, int]] = []
        self.masked: list[bool] = []

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, extra=None):
        self.shapes.append(tuple(input_ids.shape))
        self.masked.append(attention_mask is not None)
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        out = torch.stack([(input_ids * mask).sum(1).float(), mask.sum(1).float()], 1)
        return torch.cat([out, extra.float()], 1) if extra is not None else out


def _engine(forward, **kw) -> InferenceEngine:
    kw.setdefault("token_budget", 96)
    return InferenceEngine(forward, 0, "cpu", **kw)


def _logits(model):
    return lambda **t: model(**t).logits


@pytest.mark.parametrize("prefetch", [1, 3])
def test_background_collation_gives_the_inline_rows(tokenizer, tiny_bert, prefetch):
    requests = text_requests(tokenizer, _texts(70, seed=prefetch), 48)
    inline = _engine(_logits(tiny_bert), prefetch=0).run(requests)
    engine = _engine(_logits(tiny_bert), prefetch=prefetch)
    assert np.allclose(engine.run(requests), inline, atol=1e-5)
    stats = engine.last_report
    assert stats.real_tokens == sum(len(r) for r in requests) and stats.sequences == 70
    assert stats.batches > 3 and sum(stats.batch_sizes) == 70


def test_streamed_texts_and_pre_tokenised_ids_give_the_rows_of_tokenising_first(tokenizer, tiny_bert):
    texts = _texts(90, seed=4)
    inline = _engine(_logits(tiny_bert), prefetch=0).run(text_requests(tokenizer, texts, 40))
    # small windows, two tokenising threads (each with its own tokenizer): many windows in flight at once
    streamed = _engine(_logits(tiny_bert), window=11, tokenize_threads=2)
    assert np.allclose(streamed.run_texts(texts, tokenizer, 40), inline, atol=1e-5)
    assert streamed.last_report.tokenize_seconds > 0
    # the content ids chunking keeps (no special tokens): the engine adds [CLS] ... [SEP] and cuts to fit
    content = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    by_ids = _engine(_logits(tiny_bert), window=11)
    out = by_ids.run_ids(content, wrap=special_tokens(tokenizer), max_length=40)
    assert np.allclose(out, inline, atol=1e-5)
    assert by_ids.last_report.tokenize_seconds == 0  # nothing tokenised again
    assert by_ids.last_report.real_tokens == streamed.last_report.real_tokens


def test_a_real_encoder_gives_the_same_vectors_on_every_path():
    from transformers import AutoModel, AutoTokenizer

    from pipeline.config import default_encoder_path
    from pipeline.infer.engine import for_inference, mean_pool

    path = default_encoder_path()
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = for_inference(AutoModel.from_pretrained(path, local_files_only=True), torch.device("cpu"))

    def embed(**batch):
        pooled = mean_pool(model(**batch).last_hidden_state, batch.get("attention_mask"))
        return torch.nn.functional.normalize(pooled, dim=-1)

    texts = _texts(24, seed=8) + ["Markets fell sharply on Monday as investors weighed the bank's rate decision."]
    old = InferenceEngine(embed, tok.pad_token_id, "cpu", token_budget=512, prefetch=0).run(tokenize(tok, texts, 128))
    new = InferenceEngine(embed, tok.pad_token_id, "cpu", token_budget=512, window=8).run_texts(texts, tok, 128)
    static = InferenceEngine(embed, tok.pad_token_id, "cpu", token_budget=512, static_shapes=True)
    assert np.abs(new - old).max() < 1e-5
    assert np.abs(static.run_texts(texts, tok, 128) - old).max() < 1e-5
    assert np.allclose(np.linalg.norm(new, axis=1), 1.0, atol=1e-5)


def test_static_shapes_use_few_shapes_and_answer_every_request_in_order():
    rng = random.Random(2)
    requests = [Request([rng.randint(1, 99) for _ in range(rng.randint(1, 90))]) for _ in range(300)]
    extra = np.arange(300, dtype=np.float32).reshape(300, 1)
    echo = _Echo()
    engine = _engine(echo, token_budget=512, static_shapes=True)
    out = engine.run(requests, {"extra": extra})
    for i, req in enumerate(requests):
        assert out[i].tolist() == [sum(req.input_ids), len(req.input_ids), i]
    shapes = set(echo.shapes)
    assert len(shapes) < len(echo.shapes)  # batches of a width bucket share one shape
    assert all(rows * width <= 512 and rows == 512 // width and width % 16 == 0 for rows, width in shapes)
    assert all(echo.masked)  # a static shape always carries its mask
    stats = engine.last_report
    assert stats.real_tokens == sum(len(r) for r in requests)
    assert stats.padded_tokens == sum(rows * width for rows, width in echo.shapes)
    assert 0 < stats.padding_waste < 0.35


def test_rows_come_back_in_order_whatever_the_window():
    rng = random.Random(6)
    ids = [[rng.randint(1, 99) for _ in range(rng.randint(0, 60))] for _ in range(157)]
    echo = _Echo()
    out = _engine(echo, token_budget=120).run_ids(ids, wrap=([101], [102]))
    for i, row in enumerate(ids):
        assert out[i].tolist() == [101 + sum(row) + 102, len(row) + 2]
    assert _engine(_Echo()).run_ids([]).shape == (0, 0)
    assert _engine(_Echo()).run_texts([], None, 16).shape == (0, 0)


def test_token_blocks_collate_as_the_request_collator_does(tokenizer):
    texts = _texts(40, seed=3)
    requests = text_requests(tokenizer, texts, 32)
    before, after = special_tokens(tokenizer)
    block = TokenBlock.from_lists(token_ids(tokenizer, texts, 32 - len(before) - len(after)), wrap=(before, after))
    assert block.lengths.tolist() == [len(r) for r in requests]
    rows = [0, 5, 17, 39]
    old = collate(requests, rows, tokenizer.pad_token_id)
    width = old["input_ids"].shape[1]
    new = gather(block, rows, width, tokenizer.pad_token_id, mask_always=True)
    assert new["input_ids"].tolist() == old["input_ids"].tolist()
    assert new["attention_mask"].tolist() == old["attention_mask"].tolist()
    # max_length cuts each input's own ids, never the special tokens around them
    cut = TokenBlock.from_lists([[5, 6, 7, 8, 9], [5]], wrap=([1], [2]), max_length=4)
    assert cut.ids.tolist() == [1, 5, 6, 2, 1, 5, 2] and cut.lengths.tolist() == [4, 3]
    with pytest.raises(ValueError, match="no room"):
        TokenBlock.from_lists([[5]], wrap=([1], [2]), max_length=1)


def test_a_failure_in_the_background_reaches_the_caller_and_stops_the_thread(tokenizer, tiny_bert):
    import threading

    class Broken:
        model_input_names = tokenizer.model_input_names

        def __getattr__(self, name):
            return getattr(tokenizer, name)

        def __call__(self, *args, **kwargs):
            raise RuntimeError("tokenizer broke")

    before = threading.active_count()
    engine = _engine(_logits(tiny_bert), window=5, tokenize_threads=1)
    with pytest.raises(RuntimeError, match="tokenizer broke"):
        engine.run_texts(_texts(20), Broken(), 32)

    def failing(**_):
        raise ValueError("forward broke")

    with pytest.raises(ValueError, match="forward broke"):
        _engine(failing, prefetch=1).run(text_requests(tokenizer, _texts(200), 32))
    assert threading.active_count() <= before  # no collating thread left behind


def test_on_batch_counts_rows_and_stats_name_the_bound():
    from pipeline.infer.batching import EngineStats

    seen: list[int] = []
    requests = [Request([7] * n) for n in (5, 9, 30, 31, 2, 2, 18)]
    _engine(_Echo(), token_budget=40).run(requests, on_batch=seen.append)
    assert seen[-1] == len(requests) and seen == sorted(seen) and len(seen) > 1
    host = EngineStats(real_tokens=1000, seconds=2.0, device_seconds=0.5, starved_seconds=1.2)
    device = EngineStats(real_tokens=1000, seconds=2.0, device_seconds=1.9, starved_seconds=0.01)
    assert host.bound == "host" and device.bound == "device"
    stages = device.stages()
    assert stages["device"]["tokens_per_s"] == pytest.approx(1000 / 1.9, rel=1e-3)
    assert stages["tokenize"]["tokens_per_s"] is None  # nothing tokenised: no rate to report


def test_models_loaded_with_eager_attention_run_sdpa_with_the_same_outputs(tokenizer):
    from transformers import BertModel

    from pipeline.infer.engine import for_inference

    torch.manual_seed(1)
    config = tiny_bert_config(tokenizer)
    config._attn_implementation = "eager"
    eager = BertModel(config).eval()
    batch = tokenizer(_texts(6, seed=1), padding=True, return_tensors="pt")
    assert eager.config._attn_implementation == "eager"
    with torch.inference_mode():
        expected = eager(**batch).last_hidden_state
        model = for_inference(eager, torch.device("cpu"))
        assert model.config._attn_implementation == "sdpa"
        got = model(**batch).last_hidden_state
    mask = batch["attention_mask"].bool()
    assert torch.allclose(got[mask], expected[mask], atol=1e-5)
