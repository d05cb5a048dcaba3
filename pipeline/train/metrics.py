"""Classification metrics: accuracy, macro-F1 and per-class precision/recall/F1."""

from __future__ import annotations

import numpy as np


def classification_report(truth: np.ndarray, predicted: np.ndarray, labels: list[str]) -> dict:
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    per_class = {}
    for i, label in enumerate(labels):
        tp = int(np.sum((predicted == i) & (truth == i)))
        fp = int(np.sum((predicted == i) & (truth != i)))
        fn = int(np.sum((predicted != i) & (truth == i)))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": tp + fn,
        }
    # macro-F1 over the classes present in the evaluation set: an absent class has no defined recall
    present = [m["f1"] for m in per_class.values() if m["support"]]
    return {
        "accuracy": round(float(np.mean(truth == predicted)) if len(truth) else 0.0, 4),
        "macro_f1": round(float(np.mean(present)) if present else 0.0, 4),
        "examples": len(truth),
        "per_class": per_class,
    }
