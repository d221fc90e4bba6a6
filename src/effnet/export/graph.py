"""Small, checked rewrites and inspections of exported ONNX graphs.

The dynamo exporter already folds SAME padding into each Conv's ``pads`` attribute when the
spatial size is fixed; :func:`inspect_graph` verifies that (no ``Pad`` fed by a ``Shape``
computation), so a regression in the exporter shows up as a failed export rather than a slower
graph.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from effnet.files import METADATA_KEY

__all__ = ["GraphSummary", "inspect_graph", "optimize_graph", "set_metadata"]


@dataclass
class GraphSummary:
    """What an exported ONNX graph contains."""

    opset: int
    ops: dict[str, int] = field(default_factory=dict)
    pad_nodes: int = 0
    dynamic_pads: list[str] = field(default_factory=list)
    """Pad nodes whose amounts are computed at run time (from ``Shape``) instead of constants."""
    shape_ops: int = 0
    input_shape: list[int | str] = field(default_factory=list)

    @property
    def static_padding(self) -> bool:
        return not self.dynamic_pads

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "static_padding": self.static_padding}


def _constant_names(graph: Any) -> set[str]:
    names = {init.name for init in graph.initializer}
    names.update(n.output[0] for n in graph.node if n.op_type == "Constant")
    return names


def _constant_value(graph: Any, name: str) -> np.ndarray | None:
    from onnx import numpy_helper

    for init in graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            for attr in node.attribute:
                if attr.name == "value":
                    return numpy_helper.to_array(attr.t)
    return None


def inspect_graph(model: Any) -> GraphSummary:
    """Op counts, opset, and whether every Pad's amounts are graph constants."""
    graph = model.graph
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    ops = Counter(n.op_type for n in graph.node)
    constants = _constant_names(graph)
    dynamic = [
        n.name or n.output[0]
        for n in graph.node
        if n.op_type == "Pad" and len(n.input) > 1 and n.input[1] not in constants
    ]
    dims: list[int | str] = []
    if graph.input:
        for d in graph.input[0].type.tensor_type.shape.dim:
            dims.append(d.dim_param if d.dim_param else int(d.dim_value))
    return GraphSummary(
        opset=int(opset),
        ops=dict(sorted(ops.items())),
        pad_nodes=ops.get("Pad", 0),
        dynamic_pads=dynamic,
        shape_ops=ops.get("Shape", 0),
        input_shape=dims,
    )


def optimize_graph(model: Any) -> Any:
    """In-place, exact rewrites that help ONNX Runtime's CPU kernels; returns ``model``.

    - ``ReduceMean`` over H and W with keepdims -> ``GlobalAveragePool``: the same arithmetic,
      but ONNX Runtime runs GlobalAveragePool in its blocked NCHWc layout, while a ReduceMean
      forces the tensor back to NCHW first (torch's exporter lowers the global pool to a mean).
    - node metadata (source stack traces with local file paths) and initializers no node uses
      are dropped.
    """
    from onnx import helper

    graph = model.graph
    rank = {vi.name: len(vi.type.tensor_type.shape.dim) for vi in graph.value_info}
    rank.update({vi.name: len(vi.type.tensor_type.shape.dim) for vi in graph.input})
    nodes = []
    for node in graph.node:
        del node.metadata_props[:]
        if node.op_type == "ReduceMean" and _is_spatial_mean(graph, node, rank):
            nodes.append(
                helper.make_node(
                    "GlobalAveragePool", [node.input[0]], list(node.output), name=node.name
                )
            )
            continue
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    # the replaced ReduceMeans leave their axes constants unused
    used = {name for node in graph.node for name in node.input}
    used.update(o.name for o in graph.output)
    keep = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    return model


def _is_spatial_mean(graph: Any, node: Any, rank: dict[str, int]) -> bool:
    keepdims = next((a.i for a in node.attribute if a.name == "keepdims"), 1)
    if keepdims != 1 or rank.get(node.input[0], 4) != 4:
        return False
    if len(node.input) > 1:  # opset >= 18: axes are an input
        axes = _constant_value(graph, node.input[1])
    else:
        axes = next((np.array(a.ints) for a in node.attribute if a.name == "axes"), None)
    return axes is not None and sorted(int(a) % 4 for a in axes.tolist()) == [2, 3]


def set_metadata(model: Any, metadata: dict[str, Any]) -> Any:
    """Embed effnet's metadata (preprocessing, classes, ...) as a model property."""
    props = {p.key: p.value for p in model.metadata_props}
    props[METADATA_KEY] = json.dumps(metadata, sort_keys=True)
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model
