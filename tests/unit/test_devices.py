"""One reading of a configured device name, shared by the encoder, the inference engine and training."""

from __future__ import annotations

import torch

from pipeline.devices import resolve_device


def test_auto_is_cuda_only_where_cuda_is_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


def test_a_named_device_is_kept():
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert str(resolve_device("cpu")) == "cpu"  # the encoder's model cache keys on this string
