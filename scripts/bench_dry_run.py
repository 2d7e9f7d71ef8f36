#!/usr/bin/env python3
"""Measure the no-op dry run of the full real config, beside an empty Snakefile's.

    python scripts/bench_dry_run.py [--repeats 5]

Makes a working directory in which every output of the real config's DAG is up to date (empty
files, then Snakemake's --touch), then times `snakemake -n` there (nothing to be done) and in a
folder holding an empty Snakefile: Snakemake's own start-up, which the workflow cannot shorten.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def snakemake(workdir: Path, *args: str, snakefile: Path = REPO / "Snakefile") -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(snakefile), "-d", str(workdir), *args],
                          cwd=workdir, env=env, capture_output=True, text=True, check=True)


def timed(workdir: Path, repeats: int, **kwargs) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = snakemake(workdir, "-n", **kwargs)
        times.append(time.perf_counter() - started)
        assert "Nothing to be done" in result.stdout + result.stderr, result.stdout[-2000:]
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-dry-") as work:
        workdir = Path(work) / "real"
        workdir.mkdir()
        (workdir / "demo").symlink_to(REPO / "demo")  # the real config's benchmark corpus path
        plan = snakemake(workdir, "-n").stdout
        for line in plan.splitlines():
            if line.strip().startswith("output: "):
                for path in line.split("output: ", 1)[1].split(","):
                    target = workdir / path.strip()
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.touch()
        snakemake(workdir, "--touch", "-c1")
        empty = Path(work) / "empty"
        empty.mkdir()
        (empty / "done.txt").touch()
        (empty / "Snakefile").write_text("rule all:\n    input: 'done.txt'\n", encoding="utf-8")
        real = timed(workdir, args.repeats)
        baseline = timed(empty, args.repeats, snakefile=empty / "Snakefile")
    print(json.dumps({
        "repeats": args.repeats,
        "real_config_no_op_median_s": round(statistics.median(real), 2),
        "empty_snakefile_median_s": round(statistics.median(baseline), 2),
        "workflow_overhead_s": round(statistics.median(real) - statistics.median(baseline), 2),
        "ratio": round(statistics.median(real) / statistics.median(baseline), 2),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
