"""Every registered importance criterion passes the ImportanceSuite contract."""

from __future__ import annotations

from iaprune.testing.importance import ImportanceSuite


class TestImportanceContract(ImportanceSuite):
    """l1, l2, bn_scale, taylor, random."""
