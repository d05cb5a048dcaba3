"""Before an int8 classifier labels anything for a model, it is compared with the fp32 torch model on a sample of
the tenant's chunk texts: the share of chunks both give the same label (argmax) and the mean absolute difference of
their class probabilities. The figures are stored with the model, in its metrics under the variant's name (e.g.
`onnx-int8`), so every worker reads one verdict and `docpipe models show` prints it; the verdict itself is taken
against DOCPIPE_INFER_MIN_AGREEMENT when read, so a changed minimum needs no new measurement.

The sample is texts alone: concat and fusion models are compared without neighbours, because a retrieval per
sampled chunk would cost more than the comparison (tests/unit/test_classify_int8.py compares them with neighbours).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass

import numpy as np
from sqlalchemy.orm import Session

from pipeline.encoders.guard import sample_texts
from pipeline.errors import ConfigError, PermanentError
from pipeline.store.models_ml import ModelRecord
from pipeline.types import utcnow

Sessions = Callable[[], AbstractContextManager[Session]]
_log = logging.getLogger(__name__)
_fell_back: set[tuple[str, str]] = set()  # (model, variant) a monitor was told of: said once per process


@dataclass(frozen=True)
class Agreement:
    predictor: str  # the quantised variant, e.g. onnx-int8
    reference: str  # what it was compared with: torch (fp32)
    chunks: int
    label_agreement: float  # share of chunks given the same label
    mean_abs_diff: float  # mean over chunks and classes of |p - p_fp32|
    max_abs_diff: float

    def as_dict(self) -> dict:
        return asdict(self)


def measure(candidate, reference, texts: list[str]) -> Agreement:
    """Compare two predictors (anything with predict(texts) and variant) on `texts`."""
    if not texts:
        raise ValueError("the agreement of two classifiers needs texts")
    a, b = np.asarray(candidate.predict(texts)), np.asarray(reference.predict(texts))
    diff = np.abs(a - b)
    return Agreement(
        candidate.variant,
        reference.variant,
        len(texts),
        round(float(np.mean(a.argmax(axis=1) == b.argmax(axis=1))), 5),
        round(float(diff.mean()), 6),
        round(float(diff.max()), 6),
    )


def stored(model: ModelRecord, variant: str) -> Agreement | None:
    """The figures stored with `model` for `variant`, if any."""
    found = (model.metrics or {}).get(variant)
    if not isinstance(found, dict) or "label_agreement" not in found:
        return None
    return Agreement(**{f: found[f] for f in Agreement.__dataclass_fields__})


def store(model: ModelRecord, agreement: Agreement) -> None:
    # a new dict: the JSON column sees an assignment, not an edit in place
    figures = {**asdict(agreement), "measured_at": utcnow().isoformat()}
    model.metrics = {**(model.metrics or {}), agreement.predictor: figures}


def verdict(agreement: Agreement, min_agreement: float) -> str | None:
    """Why `agreement` is refused, or None when it passes."""
    if agreement.label_agreement < min_agreement:
        return (
            f"its labels agree with fp32 on {agreement.label_agreement:.2%} of {agreement.chunks} chunks, "
            f"below {min_agreement:.2%}"
        )
    return None


def refuse_below(agreement: Agreement | None, model_id: str, min_agreement: float) -> None:
    """ConfigError when `agreement` falls below `min_agreement`; nothing when there is nothing to judge."""
    if agreement is None:
        return
    refused = verdict(agreement, min_agreement)
    if refused:
        raise ConfigError(
            f"the {agreement.predictor} classifier may not serve model {model_id}: {refused}; "
            "set DOCPIPE_INFER_QUANTIZE=none or lower DOCPIPE_INFER_MIN_AGREEMENT"
        )


def assess(
    sessions: Sessions, model_id: str, predictor, reference: Callable[[], object], sample: int
) -> Agreement | None:
    """The figures of a quantised `predictor` for model `model_id`: read when stored, else measured against the fp32
    predictor `reference()` gives (loaded only then) on up to `sample` of the model tenant's chunks, and stored.
    The models run with no transaction open. None when there is nothing to judge: an unquantised predictor, or
    a tenant without chunks."""
    if not predictor.quantized:
        return None
    with sessions() as session:
        model = session.get(ModelRecord, model_id)
        if model is None:
            raise PermanentError(f"model {model_id} was deleted")
        found = stored(model, predictor.variant)
        if found is not None:
            return found
        texts = sample_texts(session, model.tenant, sample)
    if not texts:
        return None  # the tenant has no chunks: nothing to compare on, nothing to label either
    agreement = measure(predictor, reference(), texts)
    with sessions() as session:
        model = session.get(ModelRecord, model_id)
        if model is not None:
            store(model, agreement)
    return agreement


def serving_predictor(session: Session, record: ModelRecord, device: str = "auto", compile: bool = False):
    """The predictor a live model scores feed items with (sentiment, topics): with DOCPIPE_INFER_QUANTIZE=int8 on the
    CPU, the int8 one when its agreement with fp32 passes, measured here once (on the model tenant's chunks) and
    stored with the model; otherwise, or when it falls below the minimum, the fp32 model. A monitor falls back
    rather than stops, as a classify job refuses: its alerts matter more than its speed (a log line says so)."""
    from pipeline.config import get_settings
    from pipeline.infer.predictor import get_predictor

    infer = get_settings().infer
    path = str(record.artefact_path)
    candidate = get_predictor(path, device, infer.token_budget, compile, infer.quantize)
    if not candidate.quantized:
        return candidate
    figures = stored(record, candidate.variant)
    if figures is None:
        texts = sample_texts(session, record.tenant, infer.guard_sample)
        if not texts:
            return get_predictor(path, device, infer.token_budget, compile)
        figures = measure(candidate, get_predictor(path, device, infer.token_budget, compile), texts)
        store(record, figures)
    refused = verdict(figures, infer.min_agreement)
    if refused:
        if (record.id, candidate.variant) not in _fell_back:  # asked every scoring batch: say it once
            _fell_back.add((record.id, candidate.variant))
            _log.warning("model %s scores with fp32, not %s: %s", record.id, candidate.variant, refused)
        return get_predictor(path, device, infer.token_budget, compile)
    return candidate
