"""Shared pieces of the ml tests: the real tokenizer, a tiny randomly initialised BERT, topic data."""

from __future__ import annotations

import random

import pytest

TOPICS = {
    "sport": "team season match goal coach league player striker stadium trophy referee",
    "finance": "market share price bank rate inflation profit merger investor bond dividend",
    "science": "research study experiment laboratory scientist data theory molecule telescope",
}
FILLER = "the a of and to in on for with by from at as this that".split()


@pytest.fixture(scope="session")
def tokenizer():
    from transformers import AutoTokenizer

    from pipeline.config import default_encoder_path

    return AutoTokenizer.from_pretrained(default_encoder_path(), local_files_only=True)


def tiny_bert_config(tokenizer, **overrides):
    """A 32-wide BERT (2 layers unless overridden) over the test tokenizer's vocabulary: built in milliseconds."""
    from transformers import BertConfig

    shape = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
    return BertConfig(vocab_size=tokenizer.vocab_size, **{**shape, **overrides})


@pytest.fixture(scope="session")
def tiny_bert(tokenizer):
    import torch
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    config = tiny_bert_config(tokenizer, max_position_embeddings=512, num_labels=3)
    return BertForSequenceClassification(config).eval()


def topic_text(topic: str, seed: int, words: int = 30) -> str:
    rng = random.Random(seed)
    vocab = TOPICS[topic].split()
    return " ".join(rng.choice(vocab) if rng.random() < 0.5 else rng.choice(FILLER) for _ in range(words)) + "."


def topic_rows(n: int, seed: int = 0) -> list[dict]:
    topics = sorted(TOPICS)
    return [
        {"id": f"ex-{i}", "text": topic_text(topics[i % 3], seed * 100_000 + i), "label": topics[i % 3]}
        for i in range(n)
    ]


@pytest.fixture(scope="session")
def tiny_base(tokenizer, tmp_path_factory):
    """A tiny randomly initialised BERT folder with the real tokenizer: trains in seconds on a CPU."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-base")
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def docpipe(*args: str, timeout: float = 600):
    """The real `docpipe` command, in a subprocess, against the test stack's settings (the environment)."""
    import os
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "cli", *args], env=dict(os.environ), capture_output=True, text=True, timeout=timeout
    )


def docpipe_json(*args: str, timeout: float = 600):
    import json

    proc = docpipe(*args, "--json", timeout=timeout)
    if proc.returncode not in (0, 1):
        raise AssertionError(f"docpipe {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc.returncode, json.loads(proc.stdout)


def write_rows(path, rows: list[dict]):
    import pandas as pd

    pd.DataFrame(rows).to_csv(path, index=False)
    return path
