"""Retrieval-augmented fine-tuning: data validation, leak-free neighbours, the training loop, the job."""

from pipeline.neighbours import LeakRule, NeighbourSet, leak_rules, retrieve
from pipeline.train.data import DataError, Examples, load_examples, split
from pipeline.train.job import TrainingJob, TrainRequest, summarise
from pipeline.train.trainer import Cancelled, TrainConfig, train_run

__all__ = [
    "Cancelled",
    "DataError",
    "Examples",
    "LeakRule",
    "NeighbourSet",
    "TrainConfig",
    "TrainRequest",
    "TrainingJob",
    "leak_rules",
    "load_examples",
    "retrieve",
    "split",
    "summarise",
    "train_run",
]
