"""Keras 3's metrics, losses, optimizers and training loop, with Keras' numbers, for PyTorch.

>>> import torch, torch_keras_metrics as tkm
>>> acc = tkm.SparseCategoricalAccuracy()
>>> acc(torch.tensor([2, 1]), torch.tensor([[0.1, 0.6, 0.3], [0.05, 0.95, 0.0]]))
tensor(0.5000)
"""

from . import checkpoint, distributed, functional, losses, optimizers
from .callback_list import CallbackList
from .callbacks import BaseLogger, Callback, ProgbarLogger
from .checkpoint import CheckpointError, load_weights
from .confusion_metrics import (
    AUC,
    FalseNegatives,
    FalsePositives,
    Precision,
    PrecisionAtRecall,
    Recall,
    RecallAtPrecision,
    SensitivityAtSpecificity,
    SpecificityAtSensitivity,
    TrueNegatives,
    TruePositives,
)
from .correlation_metrics import ConcordanceCorrelation, PearsonCorrelation
from .f_score_metrics import F1Score, FBetaScore
from .hinge_metrics import CategoricalHinge, Hinge, SquaredHinge
from .history import History, plot_history
from .iou_metrics import BinaryIoU, IoU, MeanIoU, OneHotIoU, OneHotMeanIoU
from .keras_callbacks import (
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TensorBoard,
    TerminateOnNaN,
)
from .losses import KerasLoss
from .metrics import (
    Accuracy,
    BinaryAccuracy,
    CategoricalAccuracy,
    Mean,
    MeanMetricWrapper,
    SparseCategoricalAccuracy,
    SparseTopKCategoricalAccuracy,
    StatefulMetric,
    TopKCategoricalAccuracy,
    get,
    resolve_accuracy,
    valid_names,
)
from .probabilistic_metrics import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    KLDivergence,
    Poisson,
    SparseCategoricalCrossentropy,
)
from .reduction_metrics import Sum
from .regression_metrics import (
    CosineSimilarity,
    LogCoshError,
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredError,
    MeanSquaredLogarithmicError,
    R2Score,
    RootMeanSquaredError,
)
from .trainer import Trainer
from .version import __version__ as __version__

__all__ = [
    "Accuracy",
    "BinaryAccuracy",
    "CategoricalAccuracy",
    "Mean",
    "MeanMetricWrapper",
    "StatefulMetric",
    "SparseCategoricalAccuracy",
    "SparseTopKCategoricalAccuracy",
    "TopKCategoricalAccuracy",
    "F1Score",
    "FBetaScore",
    "IoU",
    "MeanIoU",
    "BinaryIoU",
    "OneHotIoU",
    "OneHotMeanIoU",
    "MeanSquaredError",
    "MeanAbsoluteError",
    "RootMeanSquaredError",
    "MeanAbsolutePercentageError",
    "MeanSquaredLogarithmicError",
    "CosineSimilarity",
    "LogCoshError",
    "R2Score",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "KLDivergence",
    "Poisson",
    "Hinge",
    "SquaredHinge",
    "CategoricalHinge",
    "PearsonCorrelation",
    "ConcordanceCorrelation",
    "Sum",
    "distributed",
    "functional",
    "get",
    "losses",
    "optimizers",
    "resolve_accuracy",
    "valid_names",
    "BaseLogger",
    "Callback",
    "CallbackList",
    "History",
    "KerasLoss",
    "ProgbarLogger",
    "Trainer",
    "plot_history",
    "CSVLogger",
    "EarlyStopping",
    "LambdaCallback",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "ReduceLROnPlateau",
    "TensorBoard",
    "TerminateOnNaN",
    "checkpoint",
    "CheckpointError",
    "load_weights",
    "AUC",
    "FalseNegatives",
    "FalsePositives",
    "Precision",
    "PrecisionAtRecall",
    "Recall",
    "RecallAtPrecision",
    "SensitivityAtSpecificity",
    "SpecificityAtSensitivity",
    "TrueNegatives",
    "TruePositives",
]
