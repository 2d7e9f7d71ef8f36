#!/usr/bin/env python3
"""Each stage's wall time and peak memory, from Snakemake's benchmark files, as a Markdown table.

    python scripts/rehearsal_table.py rehearsal [--output rehearsal/stages.md]

Reads <workdir>/benchmarks/<stage>/<job>.tsv (the `benchmark:` files the rules write: wall seconds
`s` and peak resident memory `max_rss` in MB) and prints one row per job, in workflow order.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

STAGES = ("data", "train", "average", "benchmark")


def rows(workdir: Path) -> list[dict[str, str]]:
    found = []
    for stage in STAGES:
        for path in sorted((workdir / "benchmarks" / stage).glob("*.tsv")):
            with open(path, encoding="utf-8", newline="") as handle:
                for record in csv.DictReader(handle, delimiter="\t"):
                    found.append({"stage": stage, "job": path.stem, "seconds": float(record["s"]),
                                  "max_rss_mb": float(record["max_rss"]) if record["max_rss"] != "NA" else None})
    return found


def markdown(records: list[dict]) -> str:
    lines = ["| stage | job | wall time (s) | peak memory (MB) |", "| --- | --- | ---: | ---: |"]
    for r in records:
        memory = f"{r['max_rss_mb']:,.0f}" if r["max_rss_mb"] is not None else "n/a"
        lines.append(f"| {r['stage']} | {r['job']} | {r['seconds']:,.1f} | {memory} |")
    total = sum(r["seconds"] for r in records)
    lines.append(f"| all | {len(records)} jobs | {total:,.1f} | {max((r['max_rss_mb'] or 0) for r in records):,.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--output", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    records = rows(args.workdir)
    if not records:
        print(f"{args.workdir}/benchmarks: no benchmark files (has the workflow run there?)", file=sys.stderr)
        return 1
    table = markdown(records)
    print(table, end="")
    if args.output:
        args.output.write_text(table, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
