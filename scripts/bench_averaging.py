#!/usr/bin/env python3
"""Measure the peak memory and time of checkpoint averaging, streamed versus all-at-once.

    python scripts/bench_averaging.py [--parameters 100e6] [--k 1 3 5]

Writes k Lightning-style checkpoints ({"state_dict": ...}) of a model with about `--parameters`
random float32 weights (FastConformer-like shapes, plus integer BatchNorm counters), then, each in
a fresh process so that the peak resident memory is its own:
- streamed: quranft.training.average.average_checkpoints, which holds one accumulator and one checkpoint;
- all at once: every checkpoint loaded first, then averaged (what a simple script does).
Reported per k: wall seconds, peak RSS in MiB, and the size of one checkpoint.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def make_state(parameters: float, seed: int) -> dict[str, torch.Tensor]:
    """Conformer-like layers of d_model 512 until about `parameters` weights."""
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    d = 512
    layer = 0
    while sum(t.numel() for t in state.values()) < parameters:
        prefix = f"encoder.layers.{layer}."
        for name, shape in (("feed_forward1.linear1.weight", (4 * d, d)), ("feed_forward1.linear2.weight", (d, 4 * d)),
                            ("self_attn.linear_qkv.weight", (3 * d, d)), ("self_attn.linear_out.weight", (d, d)),
                            ("feed_forward2.linear1.weight", (4 * d, d)), ("feed_forward2.linear2.weight", (d, 4 * d)),
                            ("conv.pointwise_conv1.weight", (2 * d, d, 1)), ("conv.batch_norm.running_mean", (d,))):
            state[prefix + name] = torch.randn(shape, generator=generator)
        state[prefix + "conv.batch_norm.num_batches_tracked"] = torch.tensor(1000 + seed)
        layer += 1
    return state


def child(mode: str, paths: list[str]) -> None:
    from quranft.training.average import average_checkpoints, load_state_dict

    # Shapes only (meta tensors, memory-mapped read): the reference must not count in the peak.
    mapped = torch.load(paths[0], mmap=True, weights_only=True)["state_dict"]
    reference = {k: torch.empty(v.shape, dtype=v.dtype, device="meta") for k, v in mapped.items()}
    del mapped
    started = time.perf_counter()
    if mode == "streamed":
        average_checkpoints(paths, reference)
    else:
        states = [load_state_dict(p) for p in paths]
        {k: (sum(s[k] for s in states) / len(states) if v.is_floating_point() else states[0][k])
         for k, v in states[0].items()}
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux
    print(json.dumps({"seconds": round(elapsed, 2), "peak_rss_mib": round(peak, 1)}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parameters", type=float, default=100e6)
    parser.add_argument("--k", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1:])
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-avg-") as work:
        paths = []
        for seed in range(max(args.k)):
            path = Path(work) / f"ckpt{seed}.ckpt"
            state = make_state(args.parameters, seed)
            torch.save({"state_dict": state, "global_step": seed}, path)
            paths.append(str(path))
            del state
        parameters = sum(t.numel() for t in torch.load(paths[0], weights_only=True)["state_dict"].values())
        size = Path(paths[0]).stat().st_size / 2**20
        print(f"model: {parameters / 1e6:.1f}M parameters, one checkpoint {size:.0f} MiB", flush=True)
        results = []
        for k in args.k:
            for mode in ("streamed", "all_at_once"):
                output = subprocess.run([sys.executable, __file__, "--child", mode, *paths[:k]], capture_output=True,
                                        text=True, check=True).stdout
                figures = {"k": k, "mode": mode, **json.loads(output.strip().splitlines()[-1])}
                results.append(figures)
                print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
