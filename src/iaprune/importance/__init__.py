"""Filter importance criteria, registered by name."""

from iaprune.importance import bn_scale, group, norms, random, taylor  # noqa: F401  (register)
from iaprune.importance._base import (
    IMPORTANCES,
    Importance,
    create_importance,
    list_importances,
)
from iaprune.importance.group import GroupImportance
from iaprune.importance.taylor import accumulate_gradients

__all__ = [
    "IMPORTANCES",
    "GroupImportance",
    "Importance",
    "accumulate_gradients",
    "create_importance",
    "list_importances",
]
