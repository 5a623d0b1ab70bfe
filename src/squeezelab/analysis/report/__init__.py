"""The report: every study's tables beside the study's published values, figures, and the
declared claims decided. ``builder`` assembles it from one store; section functions
(``verdicts``) build sections from what was decided."""

from .builder import ReportBuilder, build_report, protocol_groups
from .section import Section

__all__ = ["ReportBuilder", "Section", "build_report", "protocol_groups"]
