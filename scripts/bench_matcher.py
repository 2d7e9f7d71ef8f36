#!/usr/bin/env python3
"""Measure the text matcher on noisy transcripts: accuracy per kind of query, and time per query.

    python scripts/bench_matcher.py [--queries 600] [--seed 0] [--min-rate 0.05] [--max-rate 0.20]

The queries come from tests/support/noisy_queries.py (the set the tests use): spans of one to six verses of
the Tanzil text with 5-20% of their characters edited, of every kind (single, short, basmala said,
basmala skipped, lost first word, span). A prediction is right when it is the expected verses, or
verses of identical normalised text in their place. Reported: the index build time (the Tanzil text
read and normalised, and the index), median, p95 and mean milliseconds per query after one untimed
warm-up query, and per kind the queries, the wrong predictions and the accuracy. Times are wall
clock (median_ms...) and this process's CPU time (cpu_median_ms...) on this machine's CPU; the load
average is printed beside them, since other work on a shared CPU slows the wall clock.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]

from quranft.evaluation.code_versions import matcher_versions  # noqa: E402
from quranft.matching.text_matcher import TextMatcher  # noqa: E402
from quranft.matching.verse_index import VerseIndex  # noqa: E402
from support.noisy_queries import accuracy_by_kind, make_queries  # noqa: E402


def milliseconds(prefix: str, seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {f"{prefix}median_ms": round(1000 * statistics.median(ordered), 2),
            f"{prefix}p95_ms": round(1000 * ordered[int(0.95 * (len(ordered) - 1))], 2),
            f"{prefix}mean_ms": round(1000 * statistics.mean(ordered), 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-rate", type=float, default=0.05, help="least share of characters edited")
    parser.add_argument("--max-rate", type=float, default=0.20, help="greatest share of characters edited")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    index = VerseIndex.build()
    build_seconds = time.perf_counter() - started
    queries = make_queries(args.queries, args.seed, args.min_rate, args.max_rate)
    matcher = TextMatcher()
    matcher.match(queries[0].text, index)
    times, cpu_times, predictions = [], [], []
    for query in queries:
        t0, cpu0 = time.perf_counter(), time.process_time()
        predictions.append(matcher.match(query.text, index).verses)
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - cpu0)
    print(json.dumps({
        "queries": args.queries, "seed": args.seed, "error_rate": [args.min_rate, args.max_rate],
        "index_build_seconds": round(build_seconds, 2),
        **milliseconds("", times), **milliseconds("cpu_", cpu_times),
        "cpu": {"cores": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()]},
        "by_kind": accuracy_by_kind(queries, predictions, index),
        "matcher": {"version": matcher_versions()["text"], "settings": matcher.settings()},
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
