"""Filter importance criteria, registered by name."""

from iaprune.importance import bn_scale, norms, random, taylor  # noqa: F401  (register)
from iaprune.importance._base import (
    IMPORTANCES,
    Importance,
    create_importance,
    list_importances,
)

__all__ = ["IMPORTANCES", "Importance", "create_importance", "list_importances"]
