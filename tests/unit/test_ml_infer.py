"""The batched inference engine: budgets, request order, padding accounting, concat input budgets."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from pipeline.infer.batching import pack_batches, padded_size
from pipeline.infer.engine import InferenceEngine, Request, tokenize
from pipeline.infer.inputs import ConcatLayout, concat_requests
from tests.ml_support import tiny_bert, tokenizer  # noqa: F401  (fixtures)


@pytest.mark.parametrize("seed", range(5))
def test_packing_never_exceeds_budget_and_covers_every_request_once(seed):
    rng = random.Random(seed)
    lengths = [rng.randint(1, 128) for _ in range(rng.randint(1, 400))]
    budget = rng.choice([128, 300, 1024, 4096])
    batches = pack_batches(lengths, budget, max_batch=rng.choice([None, 7, 64]))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert padded_size(lengths, batch) <= budget
    # sorted by length: a later batch is never padded wider than an earlier one
    widths = [max(lengths[i] for i in b) for b in batches]
    assert widths == sorted(widths, reverse=True)


def test_packing_bounds_the_padding_of_every_row():
    rng = random.Random(9)
    lengths = [rng.randint(5, 200) for _ in range(500)]
    batches = pack_batches(lengths, 100_000, max_padding=0.2)
    for batch in batches:
        width = max(lengths[i] for i in batch)
        assert all(lengths[i] >= 0.8 * width for i in batch)
    real = sum(lengths)
    assert 1 - real / sum(padded_size(lengths, b) for b in batches) < 0.1
    assert len(pack_batches(lengths, 100_000)) == 1  # without the bound: one very ragged batch


def test_packing_fills_batches_and_refuses_requests_over_the_budget():
    assert pack_batches([10] * 10, 50) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    assert pack_batches([10] * 10, 50, max_batch=3) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    with pytest.raises(ValueError, match="more than the token budget"):
        pack_batches([10, 60], 50)


class _Echo(torch.nn.Module):
    """Output row = (sum of ids, length, extra): enough to see which request a row answers."""

    def forward(self, input_ids, attention_mask, token_type_ids=None, extra=None):
        if attention_mask is None:  # no row padded
            attention_mask = torch.ones_like(input_ids)
        out = torch.stack([(input_ids * attention_mask).sum(1).float(), attention_mask.sum(1).float()], 1)
        return torch.cat([out, extra.float()], 1) if extra is not None else out


def test_engine_returns_rows_in_request_order_and_reports_padding():
    rng = random.Random(3)
    requests = [Request([rng.randint(1, 99) for _ in range(rng.randint(1, 40))]) for _ in range(101)]
    extra = np.arange(101, dtype=np.float32).reshape(101, 1)
    engine = InferenceEngine(_Echo(), pad_token_id=0, device="cpu", token_budget=120)
    out = engine.run(requests, {"extra": extra})
    assert out.shape == (101, 3)
    for i, req in enumerate(requests):
        assert out[i].tolist() == [sum(req.input_ids), len(req.input_ids), i]
    report = engine.last_report
    assert report.real_tokens == sum(len(r) for r in requests)
    assert report.sequences == 101 and report.batches == len(report.batch_sizes) > 1
    assert 0 <= report.padding_waste < 0.2  # sorted packing keeps padding small
    # the same requests in arrival order, one fixed batch of 16, would pad far more
    naive = sum(16 * max(len(r) for r in requests[i : i + 16]) for i in range(0, 101, 16))
    assert report.padded_tokens < naive


def test_engine_matches_one_by_one_forward_on_a_real_tokenizer(tokenizer, tiny_bert):
    texts = [
        "a short one",
        "a considerably longer sentence about rivers, bridges and the trains that cross them",
        "mid length text about markets",
        "x",
    ] * 5
    requests = tokenize(tokenizer, texts, max_length=32)
    engine = InferenceEngine(lambda **t: tiny_bert(**t).logits, tokenizer.pad_token_id, "cpu", token_budget=64)
    batched = engine.run(requests)
    with torch.inference_mode():
        single = [
            tiny_bert(**tokenizer(t, return_tensors="pt", truncation=True, max_length=32)).logits[0].numpy()
            for t in texts
        ]
    assert np.allclose(batched, np.stack(single), atol=1e-5)


@pytest.mark.slow  # torch.compile takes half a minute on a CPU
def test_a_compiled_model_answers_as_the_eager_one_across_batch_shapes(tokenizer, tiny_bert):
    """DOCPIPE_INFER_COMPILE: one module compiled with dynamic shapes (and frozen weights on the CPU) must
    give the eager model's logits for batches of several sizes and lengths, padded or not."""
    import copy

    from torch._dynamo.eval_frame import OptimizedModule

    from pipeline.infer.engine import for_inference

    compiled = for_inference(copy.deepcopy(tiny_bert), torch.device("cpu"), compile=True)
    assert isinstance(compiled, OptimizedModule)
    rng = random.Random(5)
    words = "river bridge train market share goal league study telescope".split()
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 40))) for _ in range(60)]
    texts += ["same length text"] * 8  # rows of one length: a batch of them runs without a mask
    requests = tokenize(tokenizer, texts, max_length=48)
    runs, masked = {}, set()

    def forward(model):
        def run(**t):
            masked.add(t["attention_mask"] is not None)
            return model(**t).logits

        return run

    for name, model in (("eager", tiny_bert), ("compiled", compiled)):
        engine = InferenceEngine(forward(model), tokenizer.pad_token_id, "cpu", token_budget=96)
        runs[name] = engine.run(requests)
    assert len(set(engine.last_report.batch_sizes)) > 2  # several shapes went through one compiled model
    assert masked == {True, False}
    assert np.allclose(runs["compiled"], runs["eager"], atol=1e-5)


def test_workers_keep_a_compiled_and_an_eager_encoder_apart():
    """The flag the workers pass from DOCPIPE_INFER_COMPILE reaches the model and is part of the cache key."""
    from torch._dynamo.eval_frame import OptimizedModule

    from pipeline.config import default_encoder_path
    from pipeline.infer.embedder import get_engine_encoder

    eager = get_engine_encoder(default_encoder_path(), "cpu", 0, compile=False)
    compiled = get_engine_encoder(default_encoder_path(), "cpu", 0, compile=True)
    assert isinstance(compiled.model, OptimizedModule) and not isinstance(eager.model, OptimizedModule)
    assert get_engine_encoder(default_encoder_path(), "cpu", 0, compile=True) is compiled
    assert compiled.dims == eager.dims == 384  # attributes still reach the wrapped model


@pytest.mark.parametrize("max_length,k", [(64, 1), (64, 3), (128, 5), (512, 2)])
def test_concat_inputs_never_exceed_max_length_and_keep_the_text_first(tokenizer, max_length, k):
    long = "word " * 600
    texts = [long, "short text", long]
    passages = [[long] * k, ["tiny passage"] * (k - 1), []]
    layout = ConcatLayout(max_length, k)
    text_budget, passage_budget = layout.budgets(tokenizer)
    requests = concat_requests(tokenizer, texts, passages, layout)
    assert all(len(r.input_ids) <= max_length for r in requests)
    assert len(requests[0].input_ids) == 3 + (k - 1) + text_budget + k * passage_budget <= max_length
    assert requests[0].input_ids[0] == tokenizer.cls_token_id
    assert requests[1].input_ids[1:3] == tokenizer("short text", add_special_tokens=False)["input_ids"]
    assert set(requests[0].token_type_ids[text_budget + 2 :]) == {1}  # passages are the second segment
    assert len(requests[2].input_ids) == text_budget + 2  # no passages: the text alone


def test_the_engine_embeds_like_the_sentence_transformers_encoder():
    from pipeline.config import default_encoder_path
    from pipeline.embed import get_encoder
    from pipeline.infer.embedder import EngineEncoder

    texts = [
        "Storm floods the village bridge.",
        "Quarterly profit beat the market's forecast " * 30,
        "x",
        "The striker scored twice in the cup final.",
    ]
    ours = EngineEncoder(default_encoder_path(), "cpu", token_budget=600).encode(texts)
    reference = get_encoder(default_encoder_path(), "cpu").encode(texts)
    assert ours.shape == reference.shape == (4, 384)
    assert np.allclose((ours * reference).sum(1), 1.0, atol=1e-4)  # same unit vectors, row by row


def test_the_embedder_refuses_layouts_it_cannot_reproduce(tmp_path):
    from pipeline.errors import ConfigError
    from pipeline.infer.embedder import EngineEncoder

    (tmp_path / "modules.json").write_text('[{"type": "sentence_transformers.models.Dense", "path": "1"}]')
    with pytest.raises(ConfigError, match="not Transformer \\+ Pooling"):
        EngineEncoder(str(tmp_path), "cpu")


def test_head_tokenising_gives_the_ids_of_the_whole_text(tokenizer):
    """Only a head of each long text is tokenised; the ids must be exactly those of the whole text."""
    from pipeline.infer import inputs

    rng = random.Random(3)
    words = ["market", "shares", "Ünïcödé", "naïve", "re-election", "U.S.", "£4.5bn", "東京", "don't", "x" * 40]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 400))) for _ in range(40)]
    texts += [
        "word" + " " * 500 + "tail " * 50,  # a run of whitespace across the cut
        "a" * 3000,  # no whitespace at all: tokenised whole
        "start " + "supercalifragilistic" * 30 + " end",  # a long word lands on the cut
        "!?" * 800 + " words after symbols",  # symbols only: far fewer characters per token than words
        "short text",
        "",
    ]
    for limit in (1, 7, 32, 126):
        full = inputs._encode(tokenizer, texts, limit)
        assert inputs.token_ids(tokenizer, texts, limit) == full
    cut = inputs.text_head("alpha beta gamma delta", 13)
    assert cut == "alpha beta" and inputs.text_head("alpha   beta", 8) == "alpha"


def test_unpadded_batches_go_without_a_mask_and_pool_as_with_one():
    from pipeline.infer.engine import collate, mean_pool

    seen = []

    def forward(input_ids, attention_mask, **_):
        seen.append(attention_mask is None)
        return input_ids[:, :1].float()

    requests = [Request([7] * 4), Request([8] * 4), Request([9] * 2)]
    out = InferenceEngine(forward, 0, "cpu", token_budget=8, max_padding=None).run(requests)
    assert out[:, 0].tolist() == [7, 8, 9] and seen == [True, True]  # [4, 4] then [2]: neither padded
    out = InferenceEngine(forward, 0, "cpu", token_budget=12, max_padding=None).run(requests)
    assert seen[-1] is False  # [4, 4, 2] is padded: the mask goes with it
    host = collate(requests, [0, 2], pad_token_id=0)
    assert host["input_ids"].tolist() == [[7, 7, 7, 7], [9, 9, 0, 0]]
    assert host["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    hidden = torch.randn(2, 5, 3)
    assert torch.allclose(mean_pool(hidden, None), mean_pool(hidden, torch.ones(2, 5, dtype=torch.long)))
