#!/usr/bin/env python3
"""Export a model in every format and time each side by side on the demo benchmark's clips.

    python scripts/bench_export.py --model rehearsal/replica_base.nemo [--out rehearsal/export]
                                   [--threads 2] [--clips 87] [--variants]

The export as the workflow makes it (python -m quranft export: fp32, int8, int4, parity on
--parity-clips demo benchmark clips), its time and peak memory (export.json); then, in one process,
each clip one at a time through the .nemo (PyTorch, CTC head) and each ONNX format (onnxruntime),
all on --threads threads: the audio already decoded, from samples to log-probs, after one warm-up
clip, median and p95 over the clips. With --variants, also the quantization choices the export did
not take (int8 of MatMul and Conv, per-channel int8 MatMul), their sizes and latencies. Prints a Markdown table.

The default model is the full-size replica of NVIDIA's (scripts/make_replica_base.py; random
weights): sizes and latencies are real-size figures, its transcripts are not meaningful, so the
accuracy of the formats is judged on the demo's trained models (the leaderboard's Deployable table).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def clips(count: int) -> list[np.ndarray]:
    from quranft.data.audio import load_audio

    manifest = json.loads((REPO / "demo" / "benchmark" / "manifest.json").read_text(encoding="utf-8"))
    return [load_audio(REPO / "demo" / "benchmark" / s["file"]) for s in manifest["samples"][:count]]


def timed(run, audios: list[np.ndarray]) -> dict[str, float]:
    run(audios[0])  # warm-up
    seconds = []
    for audio in audios:
        started = time.perf_counter()
        run(audio)
        seconds.append(time.perf_counter() - started)
    return {"median": statistics.median(seconds), "p95": float(np.percentile(seconds, 95))}


def nemo_runner(path: Path):
    import torch

    from quranft.models import nemo_models
    from quranft.models.transcribe import transcribe_samples, use_ctc_greedy

    model = nemo_models.restore(path)
    use_ctc_greedy(model)
    torch.set_grad_enabled(False)
    return lambda audio: transcribe_samples(model, [audio], keep_log_probs=True)


def onnx_runner(path: Path, threads: int):
    from quranft.models.onnx_model import OnnxModel

    model = OnnxModel(path, threads)
    return lambda audio: model.log_probs([audio])


def variants(fp32: Path, out: Path) -> dict[str, Path]:
    """The quantization choices the export does not take, for the comparison."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from quranft.deploy.quantize import quiet

    made = {}
    for name, options in {"int8 MatMul+Conv": {"op_types_to_quantize": ["MatMul", "Conv"]},
                          "int8 MatMul per-channel": {"op_types_to_quantize": ["MatMul"], "per_channel": True}}.items():
        target = out / f"variant.{name.replace(' ', '_').replace('+', '_')}.onnx"
        with quiet():
            quantize_dynamic(str(fp32), str(target), weight_type=QuantType.QInt8, **options)
        made[name] = target
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "rehearsal" / "replica_base.nemo"))
    parser.add_argument("--out", default=str(REPO / "rehearsal" / "export"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clips", type=int, default=87, help="demo benchmark clips timed (of 87)")
    parser.add_argument("--parity-clips", type=int, default=8)
    parser.add_argument("--variants", action="store_true")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from quranft.deploy.export import export_model

    model, out = Path(args.model), Path(args.out)
    manifest = out.parent / "bench_export_clips.jsonl"
    names = [s["file"] for s in json.loads((REPO / "demo" / "benchmark" / "manifest.json").read_text())["samples"]]
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text("".join(json.dumps({"id": n, "audio_filepath": str(REPO / "demo" / "benchmark" / n)}) + "\n"
                                for n in names[: args.parity_clips]), encoding="utf-8")
    record = export_model(model, out, ["fp32", "int8", "int4"], manifest, threads=args.threads)
    audios = clips(args.clips)
    files = {"nemo": model, **{fmt: Path(r["file"]) for fmt, r in record["formats"].items()}}
    if args.variants:
        files.update(variants(files["fp32"], out))
    rows = {"nemo": timed(nemo_runner(model), audios)}
    for name, path in files.items():
        if name != "nemo":
            rows[name] = timed(onnx_runner(path, args.threads), audios)
    print(f"export: {record['seconds']['total']:.0f} s ({record['seconds']}), peak memory "
          f"{record['peak_memory_mb']:.0f} MB; parity {json.dumps({k: v for k, v in record['parity'].items() if k != 'reference_failed'}, default=str)[:400]}")
    print(f"\n{len(audios)} demo benchmark clips, one at a time, {args.threads} threads, {record['machine']}\n")
    print("| format | size (MB) | latency median / p95 (s) |\n| --- | --- | --- |")
    for name, figures in rows.items():
        print(f"| {name} | {files[name].stat().st_size / 1e6:.1f} | {figures['median']:.3f} / {figures['p95']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
