#!/usr/bin/env python3
"""Peak memory and time of the CPU RNNT loss (forward and backward) on one batch, before and after
the lattice was kept narrow.

    python scripts/bench_rnnt_loss.py [--batch 32] [--frames 375] [--labels 200] [--vocabulary 1025]
                                      [--limit-gb 22]

- after: quranft.models.rnnt_loss.rnnt_costs, which gathers the blank's and the labels' log-probs
  (and the log-softmax normaliser, a few frames at a time) in float32 and widens only those
  [B, T, U+1] values to float64;
- before: the previous computation, kept here as the reference: a log-softmax of the whole
  [B, T, U+1, V] joint output, widened whole to float64.

Each runs in its own process under an address-space limit (--limit-gb: an allocation beyond it
fails instead of waking the kernel's OOM killer); reported are the process's peak resident memory
beyond the joint output's own (its input and its gradient), and the seconds of the forward and
backward pass. The defaults are the issue's batch: 32 clips of 375 encoder frames (30 s) and 200
target tokens, NVIDIA's 1024 pieces and the blank.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def widened_costs(acts, labels, act_lens, label_lens, blank):
    """The previous computation (before): the whole lattice normalised and widened to float64."""
    import torch

    from quranft.models import rnnt_loss

    batch, frames, positions, _ = acts.shape
    log_probs = torch.log_softmax(acts.float(), dim=-1).double()
    blank_lp = log_probs[..., blank]
    targets = labels[:, : positions - 1].long().clamp(min=0)
    label_lp = log_probs[:, :, :-1, :].gather(-1, targets[:, None, :, None].expand(batch, frames, -1, 1)).squeeze(-1)
    return rnnt_loss.lattice_costs(blank_lp, label_lp, act_lens, label_lens)


def measure(variant: str, batch: int, frames: int, labels: int, vocabulary: int, limit_gb: float) -> dict:
    """One forward and backward pass in this process (run as a child by main)."""
    resource.setrlimit(resource.RLIMIT_AS, (int(limit_gb * 2**30), int(limit_gb * 2**30)))
    import torch

    from quranft.models.rnnt_loss import rnnt_costs

    torch.manual_seed(0)
    torch.set_num_threads(2)
    acts = torch.randn(batch, frames, labels + 1, vocabulary, requires_grad=True)
    targets = torch.randint(0, vocabulary - 1, (batch, labels))
    lengths = torch.full((batch,), frames), torch.full((batch,), labels)
    joint_mb = 2 * acts.numel() * 4 / 2**20  # the joint's output and its gradient
    start_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    costs = rnnt_costs if variant == "after" else widened_costs
    started = time.perf_counter()
    try:
        costs(acts, targets, *lengths, vocabulary - 1).sum().backward()
    except (RuntimeError, MemoryError) as error:
        return {"variant": variant, "failed": f"{type(error).__name__}: {str(error)[:120]}"}
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"variant": variant, "seconds": round(seconds, 2), "peak_mb": round(peak_mb),
            "joint_and_gradient_mb": round(joint_mb), "beyond_joint_mb": round(peak_mb - start_mb - joint_mb / 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--frames", type=int, default=375)
    parser.add_argument("--labels", type=int, default=200)
    parser.add_argument("--vocabulary", type=int, default=1025, help="pieces and the blank")
    parser.add_argument("--limit-gb", type=float, default=22.0)
    parser.add_argument("--child", choices=["before", "after"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    shape = (args.batch, args.frames, args.labels, args.vocabulary, args.limit_gb)
    if args.child:
        print(json.dumps(measure(args.child, *shape)))
        return 0
    for variant in ("after", "before"):
        result = subprocess.run([sys.executable, __file__, "--child", variant, "--batch", str(args.batch),
                                 "--frames", str(args.frames), "--labels", str(args.labels),
                                 "--vocabulary", str(args.vocabulary), "--limit-gb", str(args.limit_gb)],
                                capture_output=True, text=True, env={"PYTHONPATH": str(REPO / "src")})
        line = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else json.dumps(
            {"variant": variant, "failed": f"exit {result.returncode}: {result.stderr.strip()[-200:]}"})
        print(json.dumps({"shape": dict(zip(("batch", "frames", "labels", "vocabulary"), shape)), **json.loads(line)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
