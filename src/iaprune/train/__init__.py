"""Training, evaluation, BatchNorm recalibration and checkpoints."""

from iaprune.train.bn_recalibrate import recalibrate_bn
from iaprune.train.checkpoint import load_weights, save_atomic
from iaprune.train.finetune import TrainHistory, finetune
from iaprune.train.loop import evaluate, train_epoch

__all__ = [
    "TrainHistory",
    "evaluate",
    "finetune",
    "load_weights",
    "recalibrate_bn",
    "save_atomic",
    "train_epoch",
]
