"""A trained model's folder: the encoder as a Hugging Face model folder (weights, config, tokenizer), the
head (and fusion module) in head.pt, and docpipe_model.json describing labels and inputs.

docpipe_model.json is written last, so a folder without it is an unfinished save.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline.errors import ConfigError

CONFIG_FILE = "docpipe_model.json"
HEAD_FILE = "head.pt"
FORMAT = 1
AUGMENTS = ("none", "concat", "fusion")


@dataclass
class ArtefactConfig:
    labels: list[str]
    augment: str = "none"
    neighbours: int = 0
    max_length: int = 256
    text_share: float = 0.5
    neighbour_dims: int | None = None  # fusion: width of the index vectors it attends over
    base_model: str = ""
    extra: dict = field(default_factory=dict)
    format: int = FORMAT


def write_config(folder: Path, config: ArtefactConfig) -> None:
    tmp = folder / (CONFIG_FILE + ".tmp")
    tmp.write_text(json.dumps(asdict(config), indent=2))
    os.replace(tmp, folder / CONFIG_FILE)


def read_config(folder: str | Path) -> ArtefactConfig:
    """The folder's description, checked against what is on disk; ConfigError says what is wrong."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"model folder {folder} does not exist")
    try:
        raw = json.loads((folder / CONFIG_FILE).read_text())
        config = ArtefactConfig(**raw)
    except FileNotFoundError:
        raise ConfigError(
            f"model folder {folder} has no {CONFIG_FILE}: not a docpipe model, or its save did not finish"
        ) from None
    except (json.JSONDecodeError, TypeError) as exc:
        raise ConfigError(f"model folder {folder}: {CONFIG_FILE} is corrupt ({exc})") from None
    if config.format != FORMAT:
        raise ConfigError(f"model folder {folder} has format {config.format}; this docpipe reads {FORMAT}")
    if config.augment not in AUGMENTS or not config.labels:
        raise ConfigError(f"model folder {folder}: augment {config.augment!r} / labels {config.labels!r} invalid")
    try:
        json.loads((folder / "config.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError) as exc:
        raise ConfigError(f"model folder {folder}: config.json missing or corrupt ({exc})") from None
    heads = _head_classes(folder)
    if heads != len(config.labels):
        raise ConfigError(
            f"model folder {folder}: the head has {heads} classes but {len(config.labels)} "
            "labels are recorded; the folder does not match its description"
        )
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("pytorch_model*.bin")):
        raise ConfigError(f"model folder {folder} holds no weights")
    return config


def unusable(folder: str | Path | None) -> str | None:
    """Why a model folder cannot be loaded (promote and rollback refuse such a model); None when it can."""
    try:
        read_config(folder or "")
    except ConfigError as exc:
        return str(exc)
    return None


def _head_classes(folder: Path) -> int:
    import torch

    try:
        state = torch.load(folder / HEAD_FILE, map_location="cpu", weights_only=True)
        return int(state["head.weight"].shape[0])
    except FileNotFoundError:
        raise ConfigError(f"model folder {folder} has no {HEAD_FILE}") from None
    except Exception as exc:  # a truncated or foreign file: torch raises several types
        raise ConfigError(f"model folder {folder}: {HEAD_FILE} is unreadable ({type(exc).__name__}: {exc})") from None


def load_model(folder: str | Path, device, compile: bool = False):
    """(torch module in eval mode on `device`, tokenizer, config); ConfigError when the folder is unusable.
    compile: see engine.for_inference."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from pipeline.infer.classifier_model import Classifier
    from pipeline.infer.engine import for_inference

    config = read_config(folder)
    folder = Path(folder)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = Classifier(
            AutoModel.from_pretrained(folder, local_files_only=True),
            len(config.labels),
            config.neighbour_dims if config.augment == "fusion" else None,
        )
        state = torch.load(folder / HEAD_FILE, map_location="cpu", weights_only=True)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith("encoder.") for k in missing):
            raise ValueError(f"head does not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
    except ConfigError:
        raise
    except Exception as exc:  # transformers raises many types for one cause: an unusable folder
        raise ConfigError(f"model folder {folder} cannot be loaded: {type(exc).__name__}: {exc}") from exc
    return for_inference(model, device, compile), tokenizer, config


def save_model(folder: Path, model, tokenizer, config: ArtefactConfig) -> None:
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).unlink(missing_ok=True)  # a save in progress is not a model
    model.encoder.save_pretrained(folder)
    torch.save(model.head_state(), folder / HEAD_FILE)
    tokenizer.save_pretrained(folder)
    write_config(folder, config)
