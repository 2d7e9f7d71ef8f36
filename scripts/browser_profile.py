#!/usr/bin/env python3
"""Where an export's time goes in the browser: onnxruntime-web's own profile of a clip run through
the reference page (web/), WASM, one thread, in headless Chromium, summed by part of the model and
by operator type (quranft.evaluation.browser_profile).

    python scripts/browser_profile.py --model export/model.int8.onnx [--seconds 10] [--runs 3] [--json profile.json]

The clip is browser_latency.py's (the demo benchmark's clips joined to --seconds). One cold run,
then --runs warm runs; the figures are the warm runs' means in ms per run, and each one's share
of the nodes' sum. Profiling adds its own cost to each node: read the shares, and the latency
from browser_latency.py.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from browser_latency import clip  # noqa: E402
from quranft.evaluation.browser_profile import profile_in_browser  # noqa: E402
from quranft.models.browser import MODELS_URL, Browser, BrowserModel  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help="an exported .onnx file")
    parser.add_argument("--seconds", type=float, default=10.0, help="the clip's length (default 10)")
    parser.add_argument("--runs", type=int, default=3, help="warm runs (default 3)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:  # the page serves the one file, under its own name
        served = Path(folder) / args.model.name
        shutil.copy2(args.model, served)
        with Browser(folder) as browser:
            result = profile_in_browser(browser, MODELS_URL + served.name, BrowserModel(served, browser),
                                        clip(args.seconds), args.runs)
            result.update(model=str(args.model), seconds=args.seconds, versions=browser.versions())
    print(f"{result['model']}: a {result['seconds']:g} s clip, {result['runs']} warm runs of {result['run_ms']:.0f} ms "
          f"(profiled), the nodes' kernels {result['nodes_ms']:.0f} ms")
    for title, figures, rows in (("part", result["parts"], None), ("operator type", result["ops"], 15)):
        print(f"| {title} | ms per run | share |\n| --- | --- | --- |")
        for name, ms in list(figures.items())[:rows]:
            print(f"| {name} | {ms:.1f} | {ms / result['nodes_ms']:.1%} |")
    print(f"chromium {result['versions']['chromium']}, onnxruntime-web {result['versions']['onnxruntime_web']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
