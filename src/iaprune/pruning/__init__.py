"""Channel groups, pruning specs and structural surgery."""

from iaprune.pruning.groups import ChannelGroup, ExcludedGroup, find_groups, scan_groups
from iaprune.pruning.spec import PruningSpec
from iaprune.pruning.surgery import Pruner, apply_spec

__all__ = [
    "ChannelGroup",
    "ExcludedGroup",
    "Pruner",
    "PruningSpec",
    "apply_spec",
    "find_groups",
    "scan_groups",
]
