"""Reports: report.json, console tables, HTML and Markdown with plots.

:class:`Table` and :func:`markdown_table` are public so benchmark scripts render their
result tables with the same code (and number formats) as the run reports.
"""

from iaprune.reports.content import Table
from iaprune.reports.markdown import table as markdown_table
from iaprune.reports.summary import build_report, print_table

__all__ = ["Table", "build_report", "markdown_table", "print_table"]
