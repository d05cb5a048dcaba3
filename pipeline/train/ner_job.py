"""The token-level training job: the sequence job (pipeline/train/job.py) with NER data, runs and metrics.

Neighbours, the work folder, resume, the job and model rows and the registry are the sequence job's: a
sentence retrieves its passages under the same leak rules, and they follow it after the separator
carrying no labels. Registry task `ner`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from pipeline.infer.ner_inputs import NER_TASK
from pipeline.train.data import DataError
from pipeline.train.job import TrainingJob, TrainRequest
from pipeline.train.ner_data import NerExamples, load_ner, ner_data_hash, split_sentences
from pipeline.train.trainer import TrainConfig

if TYPE_CHECKING:  # the trainer loads torch: the CLI checks data without it
    from pipeline.train.ner_trainer import NerConfig, NerSplit

NER_AUGMENTS = ("none", "concat")


@dataclass
class NerRequest(TrainRequest):
    """`docpipe train --task ner`: no text or label column (the file's format says where they are)."""

    text_col: str = ""
    label_col: str = ""
    task: str = NER_TASK
    stride: int = 32

    def check(self) -> None:
        super().check()
        if self.augment not in NER_AUGMENTS:
            raise DataError(f"--augment {self.augment} is for classification; NER takes {' or '.join(NER_AUGMENTS)}")
        if not 0 <= self.stride <= self.max_length // 2:
            raise DataError(f"--stride must be 0..{self.max_length // 2} (half of --max-length), got {self.stride}")


def request_for(options: dict) -> TrainRequest:
    """The request a training job's options describe: token-level for task `ner`, else sequence-level."""
    return (NerRequest if options.get("task") == NER_TASK else TrainRequest).from_options(options)


def job_for(request: TrainRequest, tenant: str, workdir: Path, base_model: str, device: str = "auto") -> TrainingJob:
    cls = NerTrainingJob if isinstance(request, NerRequest) else TrainingJob
    return cls(request, tenant, workdir, base_model, device)


class NerTrainingJob(TrainingJob):
    request: NerRequest

    def load(self) -> NerExamples:  # type: ignore[override]  # the shared steps read texts, ids, times, label_set
        r = self.request
        examples = load_ner(r.data)
        self.examples = examples  # type: ignore[assignment]
        self.train_rows, self.held_rows = split_sentences(examples, r.eval_fraction, r.seed)
        return examples

    def _ner(self) -> NerExamples:
        examples = self._loaded()
        if not isinstance(examples, NerExamples):
            raise RuntimeError("the NER data is not loaded yet: call load() first")
        return examples

    def data_hash(self) -> str:
        return ner_data_hash(self._ner())

    def config(self, mode: str) -> NerConfig:
        from pipeline.train.ner_trainer import NerConfig

        return NerConfig(**vars(super().config(mode)), stride=self.request.stride)

    def _sentences(self, rows: list[int], mode: str) -> NerSplit:
        from pipeline.train.ner_trainer import NerSplit

        sentences = [self._ner().sentences[i] for i in rows]
        side = NerSplit([s.text for s in sentences], [s.words for s in sentences], [s.tags for s in sentences])
        if mode == "concat":
            found = self._found()
            side.passages = [found.passages(i) for i in rows]
        return side

    def _train(self, cfg: TrainConfig, mode: str, run_dir: Path, progress: Callable[[str, dict], None] | None):
        from pipeline.train.ner_trainer import train_ner_run

        return train_ner_run(
            cast("NerConfig", cfg),
            self._sentences(self.train_rows, mode),
            self._sentences(self.held_rows, mode),
            run_dir,
            progress,
        )

    def params(self) -> dict:
        p = super().params()
        for key in ("text_col", "label_col", "id_col", "time_col"):
            p.pop(key, None)
        if self.examples is not None:
            ex = self._ner()
            p.update(tag_scheme=ex.scheme, entity_types=ex.types, entities=ex.entity_counts())
        return p
