"""Where an export's time goes in the browser: onnxruntime-web's own profile (session option
enableProfiling: one event per node and run, with its kernel's time) of clips run through the
reference page (web/) in headless Chromium, summed by part of the model and by operator type.

onnxruntime-web writes the events to the page's console as JSON lines; the page's console is
captured from its first script on (a script Chromium evaluates on each new document), since the
WASM runtime binds the console when it starts. Profiling adds its own cost to each node, and the
page's timer is coarse (0.1 ms, jittered) where the page is not cross-origin isolated: read the
shares, and take latency from runs without profiling (scripts/browser_latency.py).
"""

from __future__ import annotations

import collections
import json
import re
from collections.abc import Sequence

import numpy as np

from quranft.models.browser import Browser, BrowserModel

CAPTURE = """window.__quranftConsole = [];
for (const level of ["log", "info", "warn", "error", "debug"]) {
  const print = console[level].bind(console);
  console[level] = (...args) => { window.__quranftConsole.push(args.map(String).join(" ")); print(...args); };
}"""
INT8_OPS = {"DynamicQuantizeMatMul", "MatMulIntegerToFloat", "MatMulInteger", "DynamicQuantizeLinear"}
SHAPE_OPS = {"Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Reshape", "Slice", "Cast", "Equal", "Where", "Expand",
             "ConstantOfShape", "Range", "Identity", "Not", "And", "Less", "GreaterOrEqual", "Tile", "Mod", "Sub"}


def part(name: str, op: str) -> str:
    """The part of an export's graph a node belongs to, by its name (deploy.graph's front_end/ and
    acoustic/ prefixes over NeMo's module names) and its operator type."""
    if name.startswith("front_end/"):
        return "front end (STFT, log-mel)"
    if op in INT8_OPS:
        where = ("feed-forward" if "/feed_forward" in name else "attention projections" if "/self_attn/" in name
                 else "convolution module, pointwise" if re.search(r"/layers\.\d+/conv/", name)
                 else "subsampling output, CTC head")
        return f"int8 MatMuls: {where}"
    if "/pre_encode/" in name:
        return "subsampling: convolutions (fp32)" if "Conv" in op else "subsampling: masks and reshapes"
    if op == "MatMul" and "/self_attn/" in name:
        return "attention: float MatMuls (scores, positions, values)"
    if op in ("LayerNormalization", "SkipLayerNormalization"):
        return "LayerNorm"
    if op in ("QuickGelu", "Sigmoid"):
        return "Swish and GLU activations"
    if op in SHAPE_OPS:
        return "shape and masking ops"
    if "/self_attn/" in name:
        return "attention: Softmax, relative shift, other"
    if re.search(r"/layers\.\d+/conv/", name):
        return "convolution module: depthwise conv, other"
    return "other"


def profile_events(lines: Sequence[str]) -> list[dict]:
    """The profile's events among the console's lines (each a JSON object, a comma after it)."""
    return [json.loads(line.rstrip().rstrip(",")) for line in lines if line.startswith("{") and '"ph"' in line]


def summarise(events: Sequence[dict], skip: int = 1) -> dict:
    """Mean ms per run, by part and by operator type, of the runs (model_run events) after the
    first `skip`; `run_ms` the runs' own mean, `nodes_ms` their nodes' sum."""
    runs = sorted((e for e in events if e["name"] == "model_run"), key=lambda e: e["ts"])[skip:]
    if not runs:
        raise ValueError(f"the profile holds {skip} run(s) or fewer: none to summarise")
    parts, ops = collections.Counter(), collections.Counter()
    for event in events:
        if event["cat"] == "Node" and any(r["ts"] <= event["ts"] <= r["ts"] + r["dur"] for r in runs):
            ms = event["dur"] / 1000 / len(runs)
            parts[part(event["name"], event["args"]["op_name"])] += ms
            ops[event["args"]["op_name"]] += ms
    return {"runs": len(runs), "run_ms": sum(r["dur"] for r in runs) / 1000 / len(runs),
            "nodes_ms": sum(parts.values()), "parts": dict(parts.most_common()), "ops": dict(ops.most_common())}


def profile_in_browser(browser: Browser, url: str, model: BrowserModel, audio: np.ndarray, runs: int) -> dict:
    """Load the model at `url` in the page with profiling on, run `audio` once cold and `runs`
    times warm, and summarise the warm runs (summarise); the page's own run times in `page_ms`."""
    browser.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CAPTURE})
    browser.open_page()
    browser.load(url, {"enableProfiling": True})
    first = len(model.runs)
    model.log_probs([audio] * (1 + runs))
    browser.call("window.quranft.endProfiling();")
    lines = browser.call("return window.__quranftConsole;")
    return {**summarise(profile_events(lines)), "page_ms": [run.ms for run in model.runs[first:]]}
