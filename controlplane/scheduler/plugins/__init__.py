"""Filter and score plugins, one module each, named after Kubernetes' plugins.

`default_filters()` is in the order Kubernetes' default profile runs them; a
node is rejected by the first filter that fails.
"""
from __future__ import annotations

from ..framework import FilterPlugin, ScorePlugin
from .least_allocated import LeastAllocated
from .node_affinity import NodeAffinity
from .node_name import NodeName
from .node_ports import NodePorts
from .node_resources_fit import NodeResourcesFit
from .node_unschedulable import NodeUnschedulable
from .selector_spread import SelectorSpread
from .taint_toleration import TaintToleration


def default_filters() -> list[FilterPlugin]:
    return [NodeUnschedulable(), NodeName(), TaintToleration(), NodeAffinity(), NodePorts(),
            NodeResourcesFit()]


def default_scores() -> list[ScorePlugin]:
    return [LeastAllocated(), SelectorSpread()]
