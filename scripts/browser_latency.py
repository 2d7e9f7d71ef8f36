#!/usr/bin/env python3
"""An export's load time and latency in the browser, where the app runs it: onnxruntime-web (WASM,
one thread) in headless Chromium, through the reference page (web/), beside onnxruntime in Python
on one thread.

    python scripts/browser_latency.py --model rehearsal/export/model.int8.onnx [--seconds 10] [--runs 5]

The clip is the demo benchmark's first clips joined to --seconds of audio (a real recording; the
replica's random weights make its content irrelevant to the time, not the length). For each model:
its load time in the page (fetch, then onnxruntime-web's session; the first load also starts the
WASM runtime), the first run (cold), then --runs warm runs (median, p90, the largest), each the
graph's run alone (session.run, timed in the page); then the same clip by onnxruntime in Python,
one thread, one warm-up then --runs runs. Prints a Markdown table; --json writes the figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from quranft.data.audio import SAMPLE_RATE, load_audio  # noqa: E402
from quranft.data.benchmark_corpus import load_samples  # noqa: E402
from quranft.models.browser import Browser, BrowserModel  # noqa: E402


def clip(seconds: float) -> np.ndarray:
    corpus = REPO / "demo" / "benchmark"
    parts, total = [], 0
    for sample in load_samples(corpus):
        if total >= seconds * SAMPLE_RATE:
            break
        parts.append(load_audio(corpus / sample.file))
        total += len(parts[-1])
    return np.concatenate(parts)[: int(seconds * SAMPLE_RATE)]


def figures(times: list[float]) -> dict:
    return {"median_ms": statistics.median(times), "p90_ms": float(np.percentile(times, 90)), "max_ms": max(times),
            "runs": len(times)}


def measure(model_path: Path, audio: np.ndarray, runs: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:  # the page serves the one file, under its own name
        served = Path(folder) / model_path.name
        shutil.copy2(model_path, served)
        with Browser(folder) as browser:
            model = BrowserModel(served, browser)
            load = model.load()
            model.log_probs([audio])
            cold = model.runs[-1].ms
            model.log_probs([audio] * runs)
            browser_warm = figures([run.ms for run in model.runs[1:]])
            python = []
            model.python_log_probs(audio)  # warm-up
            for _ in range(runs):
                started = time.perf_counter()
                model.python_log_probs(audio)
                python.append((time.perf_counter() - started) * 1000)
            versions = browser.versions()
    return {"model": str(model_path), "bytes": model_path.stat().st_size, "seconds": len(audio) / SAMPLE_RATE,
            "load_ms": load["loadMs"], "first_run_ms": cold, "browser": browser_warm,
            "python_one_thread": figures(python), "versions": versions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", required=True, type=Path, help="exported .onnx files")
    parser.add_argument("--seconds", type=float, default=10.0, help="the clip's length (default 10)")
    parser.add_argument("--runs", type=int, default=5, help="warm runs (default 5)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    audio = clip(args.seconds)
    results = [measure(model, audio, args.runs) for model in args.model]
    print("| model | size | clip | load | first run | warm median (p90, max) | onnxruntime in Python, 1 thread |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        b, p = r["browser"], r["python_one_thread"]
        print(f"| {r['model']} | {r['bytes'] / 1e6:.1f} MB | {r['seconds']:g} s | {r['load_ms']:.0f} ms | "
              f"{r['first_run_ms']:.0f} ms | {b['median_ms']:.0f} ms ({b['p90_ms']:.0f}, {b['max_ms']:.0f}) | "
              f"{p['median_ms']:.0f} ms |")
    print(f"chromium {results[0]['versions']['chromium']}, onnxruntime-web {results[0]['versions']['onnxruntime_web']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
