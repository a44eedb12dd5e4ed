"""Keras 3's callback suite for the Trainer, with Keras' arguments and Keras' decisions: the index.

The callbacks that decide on every rank live in `training_callbacks`, the rank-0 file writers in
`file_callbacks`, what they share in `monitor`; all are importable from here and from the package.

`EarlyStopping`, `ModelCheckpoint`, `CSVLogger`, `LambdaCallback`, `TerminateOnNaN`,
`LearningRateScheduler`, `ReduceLROnPlateau` and `TensorBoard` follow `keras.callbacks` line by line;
they see the run only through `self.trainer.stop_training`, `self.trainer.optimizer` (its
`param_groups`) and `self.model` (the torch module, unwrapped from `DistributedDataParallel`).
The differences a torch user meets are listed on each class; the shared ones:

* Improvements are compared as Keras 3 compares them, in float32 (`ops.less(current - min_delta, best)`
  converts both sides to float32), so a gain smaller than float32 resolution is no improvement.
* `mode="auto"`: `loss`/`val_loss` (and each output's loss) is minimised; a metric of the Trainer with
  that log name is followed in its own direction (`higher_is_better`, or Keras' `_direction`); any other
  monitor raises a ValueError at the first epoch end, as Keras 3 does, so a typo never costs a run.
* A monitored key missing from the logs warns once per `fit`, listing the keys there are; it never stops the run.
* Under `torch.distributed`, only rank 0 writes files (checkpoints, CSV, TensorBoard) and prints;
  decisions (stopping, learning rates) run on every rank from the same epoch logs.

>>> import torch
>>> from torch_keras_metrics import Trainer
>>> torch.manual_seed(0) and None
>>> model = torch.nn.Linear(2, 1)
>>> trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), "mse", device="cpu")
>>> x = torch.randn(32, 2); y = x.sum(1, keepdim=True)
>>> stop = EarlyStopping(monitor="loss", patience=1, min_delta=10.0)
>>> history = trainer.fit(x, y, epochs=10, verbose=0, callbacks=[stop, ReduceLROnPlateau("loss", patience=1)])
>>> stop.stopped_epoch, len(history.epoch), "learning_rate" in history.history
(1, 2, True)
"""

from .distributed import is_main_process, unwrap_model
from .file_callbacks import CSVLogger, ModelCheckpoint, TensorBoard
from .monitor import MonitorCallback
from .training_callbacks import EarlyStopping, LambdaCallback, LearningRateScheduler, ReduceLROnPlateau, TerminateOnNaN

__all__ = [
    "CSVLogger",
    "EarlyStopping",
    "LambdaCallback",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "MonitorCallback",
    "ReduceLROnPlateau",
    "TensorBoard",
    "TerminateOnNaN",
    "is_main_process",
    "unwrap_model",
]
