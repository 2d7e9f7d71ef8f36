#!/usr/bin/env python3
"""An export's load time and latency in the browser, where the app runs it: onnxruntime-web (WASM,
one thread) in headless Chromium, through the reference page (web/), beside onnxruntime in Python
on one thread.

    python scripts/browser_latency.py --model rehearsal/export/model.int8.onnx [--seconds 10] [--runs 5]

The clip is the demo benchmark's first clips joined to --seconds of audio (a real recording; the
replica's random weights make its content irrelevant to the time, not the length). For each model:
its load time in the page (fetch, then onnxruntime-web's session; the first load also starts the
WASM runtime), the first run (cold), then --runs warm runs (median, p90, the largest), each the
graph's run alone (session.run, timed in the page), with the CPU time Chromium's processes took
for it; then the same clip by onnxruntime in Python, one thread, one warm-up then --runs runs.
Several models are measured side by side: each in a browser of its own, all open together, their
warm runs taken in turn (A, B, A, B, ...), so that whatever else the machine does weighs on each
alike; on a machine that others share, compare models only within one call, and by the CPU time
as well, which grows less than the wall time when other work takes the cores. Prints a Markdown
table; --json writes the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
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


def chromium_cpu_seconds(browser: Browser) -> float:
    """CPU time (user and system) of the browser's processes so far (the page's renderer, where
    onnxruntime-web's WASM runs, among them): chromedriver's descendants."""
    import psutil

    total = 0.0
    for process in psutil.Process(browser.driver.service.process.pid).children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def measure(model_paths: list[Path], audio: np.ndarray, runs: int) -> list[dict]:
    """Each model in a browser of its own, all open together, loaded and run once cold in turn;
    then the warm runs round by round, one model after the other (one runs at a time), so that
    the models share whatever else the machine does; then onnxruntime in Python likewise."""
    with contextlib.ExitStack() as stack:
        models = []
        for model_path in model_paths:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))  # the page serves the one file
            served = folder / model_path.name
            shutil.copy2(model_path, served)
            browser = stack.enter_context(Browser(folder))
            models.append((model_path, BrowserModel(served, browser), browser))
        results = []
        for model_path, model, browser in models:
            load = model.load()
            model.log_probs([audio])
            results.append({"model": str(model_path), "bytes": model_path.stat().st_size,
                            "seconds": len(audio) / SAMPLE_RATE, "load_ms": load["loadMs"],
                            "first_run_ms": model.runs[-1].ms, "warm_ms": [], "cpu_ms": [], "python_ms": [],
                            "versions": browser.versions()})
        for _ in range(runs):
            for (_, model, browser), result in zip(models, results):
                started = chromium_cpu_seconds(browser)
                model.log_probs([audio])
                result["cpu_ms"].append((chromium_cpu_seconds(browser) - started) * 1000)
                result["warm_ms"].append(model.runs[-1].ms)
        for _, model, _ in models:
            model.python_log_probs(audio)  # warm-up
        for _ in range(runs):
            for (_, model, _), result in zip(models, results):
                started = time.perf_counter()
                model.python_log_probs(audio)
                result["python_ms"].append((time.perf_counter() - started) * 1000)
    return results


def summary(result: dict) -> dict:
    """A model's measurement with the figures of its warm runs, in the page and in Python."""
    return {**result, "browser": figures(result["warm_ms"]), "browser_cpu": figures(result["cpu_ms"]),
            "python_one_thread": figures(result["python_ms"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", required=True, type=Path, help="exported .onnx files")
    parser.add_argument("--seconds", type=float, default=10.0, help="the clip's length (default 10)")
    parser.add_argument("--runs", type=int, default=5, help="warm runs (default 5)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    audio = clip(args.seconds)
    load_average = os.getloadavg()[0]
    results = [summary(result) for result in measure(args.model, audio, args.runs)]
    print("| model | size | clip | load | first run | warm median (p90, max) | warm, CPU time median (p90) "
          "| onnxruntime in Python, 1 thread |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        b, c, p = r["browser"], r["browser_cpu"], r["python_one_thread"]
        print(f"| {r['model']} | {r['bytes'] / 1e6:.1f} MB | {r['seconds']:g} s | {r['load_ms']:.0f} ms | "
              f"{r['first_run_ms']:.0f} ms | {b['median_ms']:.0f} ms ({b['p90_ms']:.0f}, {b['max_ms']:.0f}) | "
              f"{c['median_ms']:.0f} ms ({c['p90_ms']:.0f}) | {p['median_ms']:.0f} ms |")
    print(f"chromium {results[0]['versions']['chromium']}, onnxruntime-web {results[0]['versions']['onnxruntime_web']}, "
          f"{args.runs} warm runs each, load average {load_average:.1f} before and {os.getloadavg()[0]:.1f} after")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
