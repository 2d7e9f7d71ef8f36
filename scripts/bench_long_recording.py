#!/usr/bin/env python3
"""Time and peak memory of `identify` on long recordings, per model and length.

    python scripts/bench_long_recording.py --model rehearsal/replica_base.nemo rehearsal/export/model.int8.onnx \
        [--minutes 10 60] [--threads 2] [--out bench_long]

For each length: a recording made of the demo benchmark's single-verse clips with pauses
(scripts/long_recording.py make; kept in --out for the next run); then, for each model,
`python -m quranft identify --json` on it in a process of its own, under /usr/bin/time: wall
seconds, real-time factor (wall over the recording's length), peak resident memory, and how many
verses it found and how well they match the recording's (scripts/long_recording.py score; only
meaningful for a trained model: the replica's weights are random). The wall time includes the
process's start, the model's loading (NeMo's import for a .nemo) and the voice-activity detector.
Prints a Markdown table; writes <out>/figures.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from long_recording import make, score  # noqa: E402


def run_identify(model: Path, recording: Path, threads: int, out: Path) -> dict:
    found = out / f"{model.stem}.{recording.stem}.jsonl"
    command = ["/usr/bin/time", "-f", "%e %M", sys.executable, "-m", "quranft", "identify", "--model", str(model),
               "--json", "--threads", str(threads), str(recording)]
    with open(found, "w", encoding="utf-8") as stdout:
        result = subprocess.run(command, stdout=stdout, stderr=subprocess.PIPE, text=True, cwd=REPO, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    wall, peak_kb = result.stderr.strip().splitlines()[-1].split()
    record = json.loads(found.read_text(encoding="utf-8").splitlines()[0])
    if record["error"]:
        raise SystemExit(f"{model} on {recording}: {record['error']}")
    return {"wall_seconds": float(wall), "peak_memory_mb": int(peak_kb) / 1024, "verses": record["verses"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", type=Path, required=True, help=".nemo or .onnx files")
    parser.add_argument("--minutes", nargs="+", type=float, default=[10.0, 60.0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "bench_long")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for minutes in args.minutes:
        recording = args.out / f"recording_{minutes:g}min.wav"
        if not recording.with_suffix(".json").is_file():
            make(REPO / "demo" / "benchmark", minutes, recording)
        truth = json.loads(recording.with_suffix(".json").read_text(encoding="utf-8"))
        for model in args.model:
            figures = run_identify(model, recording, args.threads, args.out)
            matched = score(truth["verses"], figures.pop("verses"))
            rows.append({"model": str(model), "minutes": round(truth["seconds"] / 60, 2), "threads": args.threads,
                         **figures, "real_time_factor": figures["wall_seconds"] / truth["seconds"], **matched})
            print(f"{model} on {recording.name}: {figures['wall_seconds']:.1f} s, "
                  f"{figures['peak_memory_mb']:.0f} MB", file=sys.stderr, flush=True)
    (args.out / "figures.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    print("| model | recording (min) | wall (s) | real-time factor | peak memory (MB) | verses found / true "
          "| recall |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        recall = "—" if row["recall"] is None else f"{row['recall']:.1%}"
        print(f"| {row['model']} | {row['minutes']:.1f} | {row['wall_seconds']:.1f} | {row['real_time_factor']:.3f} | "
              f"{row['peak_memory_mb']:.0f} | {row['found_verses']} / {row['true_verses']} | {recall} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
