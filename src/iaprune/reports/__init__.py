"""Reports: report.json, console tables (and, later, HTML with plots)."""

from iaprune.reports.summary import build_report, print_table

__all__ = ["build_report", "print_table"]
