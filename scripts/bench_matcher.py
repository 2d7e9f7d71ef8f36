#!/usr/bin/env python3
"""Measure the text matcher's time per query over all 6,236 verses, and its accuracy on noise.

    python scripts/bench_matcher.py [--queries 400] [--error-rate 0.1] [--seed 0]

Queries are spans of 1 to 6 consecutive verses (some with the basmala), normalised, with a share of
their characters substituted, deleted or inserted at random, like an imperfect ASR transcript.
Reported: median and p95 seconds per query, and the share of queries whose predicted span is the
truth exactly (or, for a single verse, a verse of identical text).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from quranft import quran_text  # noqa: E402
from quranft.verses import TextMatcher, default_index, normalize  # noqa: E402

LETTERS = "ابتثجحخدذرزسشصضطظعغفقكلمنهوي"


def corrupt(text: str, rate: float, rng: random.Random) -> str:
    out = []
    for char in text:
        roll = rng.random()
        if roll < rate / 3:
            continue  # deletion
        if roll < 2 * rate / 3:
            out.append(rng.choice(LETTERS))  # substitution
        else:
            out.append(char)
        if rng.random() < rate / 3:
            out.append(rng.choice(LETTERS))  # insertion
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--error-rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    started = time.perf_counter()
    index = default_index()
    build_seconds = time.perf_counter() - started
    matcher = TextMatcher()
    times, correct = [], 0
    for _ in range(args.queries):
        surah = rng.randint(1, 114)
        count = quran_text.ayah_count(surah)
        length = rng.randint(1, min(6, count))
        first = rng.randint(1, count - length + 1)
        basmala = first == 1 and surah not in (1, 9) and rng.random() < 0.5
        text = " ".join(quran_text.verse(surah, a, "simple", with_basmala=basmala and a == 1)
                        for a in range(first, first + length))
        query = corrupt(normalize(text), args.error_rate, rng)
        expected = tuple((surah, a) for a in range(first, first + length))
        t0 = time.perf_counter()
        match = matcher.match(query, index)
        times.append(time.perf_counter() - t0)
        if match.verses == expected or (length == 1 and len(match.verses) == 1
                                        and match.verses[0] in index.groups.get(expected[0], ())):
            correct += 1
    times.sort()
    print(json.dumps({
        "queries": args.queries, "error_rate": args.error_rate, "index_build_seconds": round(build_seconds, 2),
        "median_ms": round(1000 * statistics.median(times), 2),
        "p95_ms": round(1000 * times[int(0.95 * (len(times) - 1))], 2),
        "accuracy": round(correct / args.queries, 4), "matcher": matcher.settings(),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
