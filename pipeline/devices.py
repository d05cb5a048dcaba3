"""Which torch device a configured name ("auto", "cpu", "cuda", "cuda:N") means on this machine."""

from __future__ import annotations


def resolve_device(device: str):
    """A torch.device: "auto" is the first GPU where CUDA is available, else the CPU."""
    import torch  # here, so that importing the steps that configure a device stays cheap

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def compute_threads() -> int:
    """DOCPIPE_INFER_THREADS, applied to this process's torch (its intra-op threads) and returned for the ONNX Runtime
    and OpenVINO sessions to use; 0 leaves each library its default of one thread per core. Several gpu workers on
    one machine each take every core by default and slow each other down (bench/scale.py: two on 2 cores ran
    embedding at 0.89x of one); cores / workers apiece keeps them apart."""
    from pipeline.config import get_settings

    threads = get_settings().infer.threads
    if threads > 0:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    return threads
