#!/usr/bin/env python3
"""Measure int8 quantization choices of a finished model's export by the bound, size and latency.

For each variant of deploy.quantize.quantize_int8's settings (MatMul alone or with Conv, QInt8 or
QUInt8 weights, per channel, reduce_range, the first and last layers kept in fp32): quantize the
model's fp32 export, choose its confidence threshold on the validation clips as an export does
(deploy.export.with_rejections), benchmark it on the corpus as benchmark_export does, and bound its
SeqAcc loss against the .nemo's benchmark (evaluation.deployable.bound). One JSON line per variant
on stdout, then a Markdown table.

    python scripts/bench_quantization.py --model-dir results/v4 --corpus demo/benchmark \
        --validation results/data/quran_ayah_corpus/validation.jsonl --margin 0.05
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from quranft.deploy.export import file_name, with_rejections
from quranft.deploy.quantize import INT8, quantize
from quranft.evaluation.benchmark import load_corpus, run_benchmark
from quranft.evaluation.deployable import bound, points, seqacc_hits
from quranft.fileio import read_json
from quranft.models.onnx_model import OnnxModel
from quranft.models.windowed import Windowing

# The front end's one MatMul (the mel filterbank) is never quantized: its constant is its first
# input, and quantize_dynamic quantizes a MatMul's second. First and last: the subsampling's
# output projection and the first Conformer layer, the CTC head.
FIRST_AND_LAST = ["acoustic//pre_encode/", "acoustic//layers.0/", "acoustic//ctc_decoder/"]
VARIANTS = {
    "MatMul QInt8 (the default)": INT8,
    "MatMul QUInt8": {**INT8, "weight_type": "QUInt8"},
    "MatMul QInt8 per channel": {**INT8, "per_channel": True},
    "MatMul QInt8 reduce_range": {**INT8, "reduce_range": True},
    "MatMul and Conv QUInt8": {**INT8, "op_types": ["MatMul", "Conv"], "weight_type": "QUInt8"},
    "MatMul QInt8, first and last layers in fp32": {**INT8, "keep_fp32": FIRST_AND_LAST},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True, help="results/<model>: benchmark.json and export/model.onnx")
    parser.add_argument("--corpus", required=True, help="the benchmark corpus the .nemo was benchmarked on")
    parser.add_argument("--validation", required=True, help="the validation manifest the threshold is chosen on")
    parser.add_argument("--margin", type=float, default=0.05, help="export.max_seqacc_loss (default 0.05)")
    parser.add_argument("--threshold-clips", type=int, default=100)
    parser.add_argument("--variants", nargs="*", help="names of VARIANTS to run (default: all)")
    args = parser.parse_args()
    model_dir = Path(args.model_dir)
    nemo = read_json(model_dir / "benchmark.json")
    matcher = nemo["matchers"]["primary"]
    corpus = load_corpus(args.corpus)
    rows = []
    work = Path(tempfile.mkdtemp(prefix="quantization-"))
    try:
        for name in args.variants or VARIANTS:
            staging = work / name.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
            staging.mkdir()
            fp32 = model_dir / "export" / file_name("fp32")
            target = staging / file_name("int8")
            metadata = {key: value for key, value in OnnxModel(fp32).metadata.items() if key != "quranft.rejection"}
            quantize("int8", fp32, target, {**metadata, "quranft.format": "int8"}, VARIANTS[name])
            graph = OnnxModel(target)
            windowing = Windowing().at_most(graph.max_seconds)
            with_rejections(staging, ["int8"], {"int8": graph}, args.validation, args.threshold_clips, windowing)
            result = run_benchmark(target, corpus, staging / "benchmark.json", model_dir.name, batch_size=None,
                                   decoders=("ctc",))
            record = bound(seqacc_hits(nemo, matcher), seqacc_hits(result, matcher), args.margin)
            row = {"variant": name, "settings": VARIANTS[name], "bytes": target.stat().st_size,
                   "latency_median": result["latency"]["median"], "latency_p95": result["latency"]["p95"],
                   "threads": result["latency"]["threads"],
                   "sequence_accuracy": result["summary"][matcher]["sequence_accuracy"],
                   "nemo_sequence_accuracy": nemo["summary"][matcher]["sequence_accuracy"],
                   "bound": record["bound"], "fit": record["fit"], "regressed": len(record["regressed"]),
                   "recovered": len(record["recovered"]),
                   # a finer agreement than SeqAcc: the clips whose greedy transcript is the .nemo's
                   "identical_transcripts": sum(a["transcript"] == b["transcript"]
                                                for a, b in zip(nemo["rows"], result["rows"])),
                   "clips": len(result["rows"])}
            print(json.dumps(row), flush=True)
            rows.append(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{model_dir.name}, margin {points(args.margin)} points\n")
    print("| variant | size (MB) | latency median / p95 (s) | SeqAcc (.nemo's) | bound (fit; regressed / recovered) | "
          "transcripts as the .nemo's |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['variant']} | {row['bytes'] / 1e6:.2f} | {row['latency_median']:.3f} / {row['latency_p95']:.3f} | "
              f"{100 * row['sequence_accuracy']:.1f}% ({100 * row['nemo_sequence_accuracy']:.1f}%) | "
              f"{points(row['bound'])} ({'yes' if row['fit'] else 'no'}; {row['regressed']} / {row['recovered']}) | "
              f"{row['identical_transcripts']}/{row['clips']} |")


if __name__ == "__main__":
    main()
