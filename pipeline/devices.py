"""Which torch device a configured name ("auto", "cpu", "cuda", "cuda:N") means on this machine."""

from __future__ import annotations


def resolve_device(device: str):
    """A torch.device: "auto" is the first GPU where CUDA is available, else the CPU."""
    import torch  # here, so that importing the steps that configure a device stays cheap

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)
