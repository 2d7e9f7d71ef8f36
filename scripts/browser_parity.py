#!/usr/bin/env python3
"""Where an fp32 export's log-probs in the browser (onnxruntime-web, WASM, one thread, headless
Chromium) part from onnxruntime's in Python (one thread), on the demo benchmark's clips.

    python scripts/browser_parity.py --model results/base/export/model.onnx [--worst 10] [--floor -10]
    python scripts/browser_parity.py --model M.onnx --clip negative_silence --tensors features \\
        acoustic//pre_encode/out/Add_output_0 [--cut features]
    python scripts/browser_parity.py --model M.onnx --clip negative_silence --ops

Without --clip: every clip (whole, as the browser check runs a clip of at most max_seconds), the
largest log-prob difference, where (frame, token) and that token's log-prob, the largest
difference over the tokens whose log-prob is above --floor, and whether the best class is the same
on every frame; the --worst clips printed. With --clip and --tensors: the named tensors of the
graph made outputs too (onnx), each one's largest difference; with --cut T, the sub-graph from T
(and feature_lengths) to the log-probs instead, fed Python's T in both runtimes (what the part
after T adds by itself). With --ops: one-op graphs (Log; a ReduceSum over time) on the clip's own
mel energies and logs, in both runtimes and against float64.
"""

from __future__ import annotations

import argparse
import base64
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from quranft.data.audio import load_audio  # noqa: E402
from quranft.data.benchmark_corpus import load_samples  # noqa: E402
from quranft.models.browser import ORT_DIST, Browser, BrowserModel  # noqa: E402
from quranft.models.onnx_model import OnnxModel  # noqa: E402

CORPUS = REPO / "demo" / "benchmark"
ENERGIES, LOG_GUARD = "front_end/matmul", np.float32(2 ** -24)  # the mel energies, NeMo's default log guard
# Any graph in the page's onnxruntime-web (the module the page itself loaded, so its settings:
# WASM, one thread): float32 and int64 feeds in, float32 outputs back, base64 both ways.
RUN = """const ort = await import("./%s/ort.wasm.min.mjs");
const [url, feeds] = arguments;
window.__sessions = window.__sessions || {};
window.__sessions[url] = window.__sessions[url] || await ort.InferenceSession.create(
  new Uint8Array(await (await fetch(url)).arrayBuffer()),
  {executionProviders: ["wasm"], graphOptimizationLevel: "all"});
const bytes = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0)).buffer;
const inputs = {};
for (const [name, f] of Object.entries(feeds)) {
  const data = f.type === "int64" ? new BigInt64Array(bytes(f.data)) : new Float32Array(bytes(f.data));
  inputs[name] = new ort.Tensor(f.type, data, f.dims);
}
const result = {};
for (const [name, t] of Object.entries(await window.__sessions[url].run(inputs))) {
  if (t.type !== "float32") continue;
  const u = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  let s = "";
  for (let i = 0; i < u.length; i += 32768) s += String.fromCharCode.apply(null, u.subarray(i, i + 32768));
  result[name] = {dims: t.dims, data: btoa(s)};
}
return result;""" % ORT_DIST.as_posix()


def in_page(browser: Browser, url: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    encoded = {name: {"type": "int64" if a.dtype == np.int64 else "float32", "dims": list(a.shape),
                      "data": base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()}
               for name, a in feeds.items()}
    out = browser.call(RUN, url, encoded)
    return {name: np.frombuffer(base64.b64decode(o["data"]), "<f4").reshape(o["dims"]) for name, o in out.items()}


def in_python(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def with_outputs(model: onnx.ModelProto, names: list[str], kind: int = TensorProto.FLOAT) -> onnx.ModelProto:
    for name in names:
        model.graph.output.append(helper.make_tensor_value_info(name, kind, None))
    return model


def clips(model: BrowserModel, floor: float) -> list[dict]:
    model.load()
    rows = []
    for sample in load_samples(CORPUS):
        audio = load_audio(CORPUS / sample.file)
        if len(audio) > model.max_seconds * model.sample_rate:
            continue
        page = model.log_probs([audio])[0]
        python = OnnxModel.log_probs(model, [audio])[0]  # its own session in Python, one thread
        diff = np.abs(page - python)
        frame, token = np.unravel_index(diff.argmax(), diff.shape)
        rows.append({"id": sample.id, "seconds": len(audio) / model.sample_rate, "difference": float(diff.max()),
                     "frame": int(frame), "token": int(token), "log_prob": float(python[frame, token]),
                     "above_floor": float(diff[python > floor].max()),
                     "same_best": bool((page.argmax(1) == python.argmax(1)).all())})
    return sorted(rows, key=lambda row: -row["difference"])


def one_op(name: str, node: onnx.NodeProto, folder: Path) -> Path:
    graph = helper.make_graph([node], name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, None, None])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [helper.make_tensor("axes", TensorProto.INT64, [1], [2])] if name == "sum" else [])
    path = folder / f"{name}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9), str(path))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="an fp32 export (model.onnx)")
    parser.add_argument("--worst", type=int, default=10, help="how many clips to print")
    parser.add_argument("--floor", type=float, default=-10.0, help="a log-prob floor for the tokens compared")
    parser.add_argument("--clip", help="one clip's id: its tensors (--tensors) or one-op graphs (--ops)")
    parser.add_argument("--tensors", nargs="*", default=[], help="tensor names of the graph to compare")
    parser.add_argument("--cut", help="a tensor: run the sub-graph from it to the log-probs, fed Python's")
    parser.add_argument("--ops", action="store_true", help="one-op graphs on the clip's mel energies")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Browser(Path(tmp)) as browser:
        folder = Path(tmp)
        (folder / args.model.name).symlink_to(args.model.resolve())
        if args.clip is None:
            rows = clips(BrowserModel(folder / args.model.name, browser), args.floor)
            same = sum(r["same_best"] for r in rows)
            print(f"{sum(r['difference'] > 1e-4 for r in rows)} of {len(rows)} clips over 1e-4; largest "
                  f"{rows[0]['difference']:.2g}; best class the same on every frame of {same}")
            print(f"| clip | seconds | largest difference | at frame, token | its log-prob | above {args.floor:g} |")
            print("| --- | --- | --- | --- | --- | --- |")
            for r in rows[: args.worst]:
                print(f"| {r['id']} | {r['seconds']:.1f} | {r['difference']:.2g} | {r['frame']}, {r['token']} | "
                      f"{r['log_prob']:.2f} | {r['above_floor']:.2g} |")
            return
        sample = next(s for s in load_samples(CORPUS) if s.id == args.clip)
        audio = load_audio(CORPUS / sample.file)
        feeds = {"audio": audio[None], "audio_lengths": np.array([len(audio)], dtype=np.int64)}
        extra = [args.cut] if args.cut else [ENERGIES] if args.ops else []
        graph = with_outputs(onnx.load(str(args.model)), args.tensors + extra)
        graph = with_outputs(graph, ["feature_lengths"], TensorProto.INT64)
        onnx.save(graph, str(folder / "tensors.onnx"))
        python = in_python(folder / "tensors.onnx", feeds)
        if args.ops:
            energies = python[ENERGIES][:, :, : int(python["feature_lengths"][0])] + LOG_GUARD
            logs = np.log(energies.astype(np.float64)).astype(np.float32)
            for name, node, x, exact in (
                    ("log", helper.make_node("Log", ["x"], ["y"]), energies, np.log(energies.astype(np.float64))),
                    ("sum", helper.make_node("ReduceSum", ["x", "axes"], ["y"]), logs,
                     logs.astype(np.float64).sum(2, keepdims=True))):
                one_op(name, node, folder)
                mine, page = in_python(folder / f"{name}.onnx", {"x": x})["y"], in_page(browser, f"/models/{name}.onnx",
                                                                                        {"x": x})["y"]
                print(f"{name}: browser vs Python {np.abs(page - mine).max():.2g} ({int((page != mine).sum())} of "
                      f"{mine.size} values differ); Python vs float64 {np.abs(mine - exact).max():.2g}, browser vs "
                      f"float64 {np.abs(page - exact).max():.2g}")
            return
        if args.cut:
            sub = folder / "cut.onnx"
            onnx.utils.extract_model(str(folder / "tensors.onnx"), str(sub), [args.cut, "feature_lengths"],
                                     ["log_probs", *args.tensors], check_model=False)
            feeds = {args.cut: python[args.cut], "feature_lengths": python["feature_lengths"]}
            python, url = in_python(sub, feeds), f"/models/{sub.name}"
        else:
            url = "/models/tensors.onnx"
        page = in_page(browser, url, feeds)
        for name in [*args.tensors, "log_probs"]:
            diff = np.abs(page[name] - python[name])
            print(f"{name}: largest |value| {np.abs(python[name]).max():.4g}, difference {diff.max():.2g} "
                  f"(mean {diff.mean():.2g})")


if __name__ == "__main__":
    main()
