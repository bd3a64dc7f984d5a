"""Per-layer quantization error (SQNR) to find the layers that suffer most from int8.

torchao's numeric debugger logs every node's output in the float and in the quantized graph and
pairs them by debug handle. The SQNR at a layer includes the error of every layer before it, so a
layer's own damage is the drop in SQNR from the quantized layer before it (`drop_db`).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch.fx import GraphModule
from torchao.quantization.pt2e import (
    compare_results,
    extract_results_from_loggers,
    prepare_for_propagation_comparison,
)

from kta_cli.compress.quantize_pt2e import QUANTIZABLE_OPS

# 6.02 * bits + 1.76: SQNR of a full-scale signal through an ideal uniform 8-bit quantizer
IDEAL_INT8_SQNR_DB = 6.02 * 8 + 1.76


def _is_layer(node_name: str) -> bool:
    return node_name.split("_")[0] in QUANTIZABLE_OPS or node_name.startswith("conv")


def _tensor_layers(logged: dict[Any, tuple[Any, Any, list[Any]]]) -> dict[Any, Any]:
    """Only conv/linear outputs that are float tensors: a ViT's graph also logs shape values
    (sym_size nodes, plain ints), which the SQNR comparison cannot take."""
    return {
        debug_info: (node_name, stack, stats)
        for debug_info, (node_name, stack, stats) in logged.items()
        if node_name
        and _is_layer(node_name)
        and all(isinstance(s, torch.Tensor) and s.is_floating_point() for s in stats)
    }


@torch.no_grad()
def layer_sqnr(
    reference: GraphModule, quantized: GraphModule, images: list[torch.Tensor]
) -> list[dict[str, Any]]:
    """SQNR (dB) of each conv/linear output, in graph order, with the drop it adds."""
    float_logged = prepare_for_propagation_comparison(reference)
    quant_logged = prepare_for_propagation_comparison(copy.deepcopy(quantized))
    for batch in images:
        float_logged(batch)
        quant_logged(batch)
    comparisons = compare_results(
        _tensor_layers(extract_results_from_loggers(float_logged)),
        _tensor_layers(extract_results_from_loggers(quant_logged)),
    )
    order = {node.name: i for i, node in enumerate(float_logged.graph.nodes)}
    rows = []
    for summary in comparisons.values():
        values = [float(r.sqnr) for r in summary.results]
        rows.append(
            {
                "layer": summary.ref_module_stack,
                "op": summary.ref_node_name,
                "sqnr_db": sum(values) / max(len(values), 1),
                "position": order.get(summary.ref_node_name, 0),
            }
        )
    rows.sort(key=lambda row: row["position"])
    previous = IDEAL_INT8_SQNR_DB  # the first layer is measured against a perfect 8-bit quantizer
    for row in rows:
        row["drop_db"] = max(previous - row["sqnr_db"], 0.0)
        previous = row["sqnr_db"]
        del row["position"]
    return rows


def most_sensitive(rows: list[dict[str, Any]], count: int) -> list[str]:
    """Names of the `count` layers that add the most error (largest SQNR drop)."""
    ranked = sorted(rows, key=lambda row: row["drop_db"], reverse=True)
    names: list[str] = []
    for row in ranked:
        if row["layer"] not in names:
            names.append(row["layer"])
        if len(names) == count:
            break
    return names
