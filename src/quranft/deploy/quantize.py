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


def quantize_int8(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), op_types_to_quantize=INT8["op_types"], weight_type=QuantType.QInt8,
                     per_channel=INT8["per_channel"], reduce_range=INT8["reduce_range"])


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


def quantize(fmt: str, fp32: Path, target: Path, metadata: dict[str, str]) -> None:
    """Write the `fmt` copy of the fp32 graph at `target`, carrying `metadata` (the quantizers
    drop or keep the source's unevenly)."""
    with quiet():
        {"int8": quantize_int8, "int4": quantize_int4}[fmt](fp32, target)
    model = onnx.load(str(target))
    del model.metadata_props[:]
    for key, value in sorted(metadata.items()):
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(target))
