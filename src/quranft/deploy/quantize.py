"""Quantized copies of an exported graph, with onnxruntime's quantization tools.

int8: dynamic quantization (weights int8 per tensor, activations quantized at run time) of the
      MatMul nodes only. The export computes the Conformer's pointwise convolutions and the CTC
      head as MatMuls (deploy.graph), so MatMul covers all but a few hundred thousand of the
      weights (the subsampling and depthwise convolutions), and stays fast: onnxruntime's
      ConvInteger, which quantized Conv nodes become, was slower than the float Conv on the
      full-size model (docs/export-and-identify.md: sizes and latencies of each choice, measured).
int4: weight-only 4-bit MatMul (MatMulNBits, symmetric blocks of 32 weights, int8 activations
      inside the kernel: accuracy level 4), then the int8 dynamic quantization above for the
      MatMul nodes MatMulNBits leaves (none, or those whose weights are not constants).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import onnx

FORMATS = ("fp32", "int8", "int4")
INT8 = {"method": "onnxruntime.quantization.quantize_dynamic", "op_types": ["MatMul"], "weight_type": "QInt8",
        "per_channel": False, "reduce_range": False}
INT4 = {"method": "onnxruntime.quantization.matmul_nbits_quantizer.MatMulNBitsQuantizer", "bits": 4,
        "block_size": 32, "symmetric": True, "accuracy_level": 4, "op_types": ["MatMul"], "then": INT8}


def settings(fmt: str) -> dict[str, Any] | None:
    """How a format is made from the fp32 graph (None for fp32 itself)."""
    return {"fp32": None, "int8": INT8, "int4": INT4}[fmt]


def kept_in_fp32(model: onnx.ModelProto, prefixes: list[str]) -> list[str]:
    """The names of the graph's nodes under any of the name `prefixes` (a layer: "acoustic//layers.0/")."""
    return [node.name for node in model.graph.node if any(node.name.startswith(p) for p in prefixes)]


def quantize_int8(source: Path, target: Path, settings: dict[str, Any] = INT8) -> None:
    """Dynamic int8 quantization as `settings` says (INT8; scripts/compare_quantization.py
    measures others): op_types, weight_type (QInt8, QUInt8), per_channel, reduce_range, and
    keep_fp32, the name prefixes of nodes left in fp32."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    excluded = kept_in_fp32(onnx.load(str(source), load_external_data=False), settings.get("keep_fp32", []))
    quantize_dynamic(str(source), str(target), op_types_to_quantize=settings["op_types"],
                     weight_type=QuantType[settings["weight_type"]], per_channel=settings["per_channel"],
                     reduce_range=settings["reduce_range"], nodes_to_exclude=excluded)


def quantize_int4(source: Path, target: Path) -> None:
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(onnx.load(str(source)), bits=INT4["bits"], block_size=INT4["block_size"],
                                     is_symmetric=INT4["symmetric"], accuracy_level=INT4["accuracy_level"],
                                     op_types_to_quantize=tuple(INT4["op_types"]))
    quantizer.process()
    halfway = target.with_name(target.name + ".nbits")
    onnx.save(quantizer.model.model, str(halfway))
    try:
        quantize_int8(halfway, target)
    finally:
        halfway.unlink(missing_ok=True)


@contextlib.contextmanager
def quiet():
    """onnxruntime's quantizers log a line per node at INFO on the root logger."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)


def quantize(fmt: str, fp32: Path, target: Path, metadata: dict[str, str],
             int8: dict[str, Any] = INT8) -> None:
    """Write the `fmt` copy of the fp32 graph at `target`, carrying `metadata` (the quantizers
    drop or keep the source's unevenly); an int8 copy made as `int8` says (quantize_int8)."""
    with quiet():
        if fmt == "int8":
            quantize_int8(fp32, target, int8)
        else:
            quantize_int4(fp32, target)
    model = onnx.load(str(target))
    del model.metadata_props[:]
    for key, value in sorted(metadata.items()):
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(target))
