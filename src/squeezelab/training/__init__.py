"""Training one run: config, schedules, checkpoints and the loop."""

from .checkpoint import CheckpointError, load_checkpoint, load_weights, save_checkpoint
from .config import ConfigError, RunConfig, field_names, from_dict
from .loop import RunResult, evaluate, load_splits, train
from .rundir import RunDirError

__all__ = [
    "CheckpointError",
    "ConfigError",
    "RunConfig",
    "RunDirError",
    "RunResult",
    "evaluate",
    "field_names",
    "from_dict",
    "load_checkpoint",
    "load_splits",
    "load_weights",
    "save_checkpoint",
    "train",
]
