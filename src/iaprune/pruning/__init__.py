"""Channel groups, pruning specs and structural surgery."""

from iaprune.pruning.groups import ChannelGroup, find_groups
from iaprune.pruning.spec import PruningSpec
from iaprune.pruning.surgery import Pruner, apply_spec

__all__ = ["ChannelGroup", "Pruner", "PruningSpec", "apply_spec", "find_groups"]
