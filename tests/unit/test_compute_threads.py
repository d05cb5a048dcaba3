"""DOCPIPE_INFER_THREADS: the CPU threads each process's torch and ONNX Runtime sessions use (0: their default, one per
core), so that several workers on one machine do not each take every core."""

from __future__ import annotations

import pytest

from pipeline.devices import compute_threads
from tests.conftest import settings_environment


@pytest.fixture
def torch_threads():
    import torch

    before = torch.get_num_threads()
    yield torch
    torch.set_num_threads(before)


def test_a_set_count_reaches_torch_and_zero_leaves_it_alone(torch_threads):
    torch_threads.set_num_threads(2)
    with settings_environment({"DOCPIPE_INFER_THREADS": "0"}):
        assert compute_threads() == 0
    assert torch_threads.get_num_threads() == 2
    with settings_environment({"DOCPIPE_INFER_THREADS": "1"}):
        assert compute_threads() == 1
    assert torch_threads.get_num_threads() == 1


def test_onnx_runtime_sessions_get_the_count(torch_threads, monkeypatch, tmp_path):
    import onnxruntime as ort

    from pipeline.encoders import onnx

    seen = []

    class Session:
        def __init__(self, path, options, providers):
            seen.append(options.intra_op_num_threads)

        def get_inputs(self):
            return []

    monkeypatch.setattr(ort, "InferenceSession", Session)
    for threads in ("1", "0"):
        with settings_environment({"DOCPIPE_INFER_THREADS": threads}):
            onnx.load_runner(tmp_path / "model.onnx")
    assert seen == [1, 0]
