"""Entity-level precision, recall and F1 per type, by seqeval's strict IOB2 rules (an entity counts only
when its type and both boundaries match), with the word-level tag accuracy beside them."""

from __future__ import annotations

from pipeline.infer.ner_inputs import repair


def entity_report(truth: list[list[str]], predicted: list[list[str]]) -> dict:
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    predicted = [repair(p) for p in predicted]  # as extraction reads them: I- after O opens an entity
    words = sum(len(t) for t in truth)
    right = sum(a == b for t, p in zip(truth, predicted) for a, b in zip(t, p))
    report = classification_report(truth, predicted, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    micro, macro = report.pop("micro avg"), report.pop("macro avg")
    for key in ("weighted avg", "samples avg"):
        report.pop(key, None)
    per_type = {
        kind: {
            "precision": round(float(m["precision"]), 4),
            "recall": round(float(m["recall"]), 4),
            "f1": round(float(m["f1-score"]), 4),
            "support": int(m["support"]),
        }
        for kind, m in sorted(report.items())
    }
    return {
        "precision": round(float(micro["precision"]), 4),
        "recall": round(float(micro["recall"]), 4),
        "f1": round(float(micro["f1-score"]), 4),
        "macro_f1": round(float(macro["f1-score"]), 4),
        "accuracy": round(right / words, 4) if words else 0.0,
        "entities": int(micro["support"]),
        "examples": len(truth),
        "per_type": per_type,
    }
