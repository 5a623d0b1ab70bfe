"""Analysis: statistics, the study's tables and figures, and the report (reads only the store)."""

from .report import build_report
from .stats import holm, paired_test, pearson, summarize

__all__ = ["build_report", "holm", "paired_test", "pearson", "summarize"]
