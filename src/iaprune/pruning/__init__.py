"""Channel groups, pruning specs and structural surgery."""

from iaprune.pruning.groups import ChannelGroup, ExcludedGroup, scan_groups
from iaprune.pruning.spec import PruningSpec
from iaprune.pruning.surgery import Pruner, apply_spec
from iaprune.pruning.verify import find_groups, verify_groups

__all__ = [
    "ChannelGroup",
    "ExcludedGroup",
    "Pruner",
    "PruningSpec",
    "apply_spec",
    "find_groups",
    "scan_groups",
    "verify_groups",
]
