"""Training one run: config, schedules, checkpoints and the loop.

Names are imported on first use, so that reading a run config (and the command line's
``--help``) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "CheckpointError": "checkpoint",
    "load_checkpoint": "checkpoint",
    "load_weights": "checkpoint",
    "save_checkpoint": "checkpoint",
    "ConfigError": "config",
    "RunConfig": "config",
    "field_names": "config",
    "from_dict": "config",
    "RunResult": "loop",
    "TrainOutcome": "loop",
    "evaluate": "loop",
    "load_splits": "loop",
    "train": "loop",
    "RunDirError": "rundir",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
