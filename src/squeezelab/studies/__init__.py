"""Declarative studies: spec files, expansion, execution (local or Ray) into the store."""

from .runner import best_points, default_runs_dir, plan, run_study
from .spec import StudySpec, builtin_studies, load_study, parse_overrides, parse_study

__all__ = [
    "StudySpec",
    "best_points",
    "builtin_studies",
    "default_runs_dir",
    "load_study",
    "parse_overrides",
    "parse_study",
    "plan",
    "run_study",
]
