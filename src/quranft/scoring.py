"""Scoring as the benchmark protocol defines it, plus the statistics that compare two models.

Per sample: ordered greedy matching of the expected verses E against the predicted verses P.
recall = matches / |E|; precision = distinct matched positions of P / |P|; SeqAcc = 1 when P == E.
Empty E scores 1/1/1; empty P (with E not empty) scores 0/0/0. Corpus figures are unweighted means
over all samples, failed ones included, and per category.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

Verse = tuple[int, int]
METRICS = ("recall", "precision", "sequence_accuracy")


@dataclass(frozen=True)
class SampleScore:
    recall: float
    precision: float
    sequence_accuracy: float
    matches: int

    def as_dict(self) -> dict[str, float]:
        return {"recall": self.recall, "precision": self.precision, "sequence_accuracy": self.sequence_accuracy}


FAILED = SampleScore(0.0, 0.0, 0.0, 0)


def expand_span(surah: int, first: int, last: int) -> list[Verse]:
    """A predicted span (surah s, ayah a to b) counts as (s, a), (s, a+1), ..., (s, b)."""
    return [(surah, ayah) for ayah in range(first, last + 1)]


def score_sample(expected: Sequence[Verse], predicted: Sequence[Verse]) -> SampleScore:
    expected = [tuple(v) for v in expected]
    predicted = [tuple(v) for v in predicted]
    if not expected:
        return SampleScore(1.0, 1.0, 1.0, 0)
    if not predicted:
        return SampleScore(0.0, 0.0, 0.0, 0)
    start = 0
    matched_positions: set[int] = set()
    for verse in expected:
        for position in range(start, len(predicted)):
            if predicted[position] == verse:
                matched_positions.add(position)
                start = position + 1
                break
    matches = len(matched_positions)
    return SampleScore(
        recall=matches / len(expected),
        precision=len(matched_positions) / len(predicted),
        sequence_accuracy=1.0 if predicted == expected else 0.0,
        matches=matches,
    )


def summarize(scores: Sequence[Mapping[str, float]], categories: Sequence[str] | None = None) -> dict:
    """Means over all samples, and per category."""

    def means(rows):
        return {m: (statistics.fmean(r[m] for r in rows) if rows else None) for m in METRICS} | {"samples": len(rows)}

    summary = means(list(scores))
    if categories is not None:
        by_category: dict[str, list] = {}
        for row, category in zip(scores, categories):
            by_category.setdefault(category, []).append(row)
        summary["per_category"] = {c: means(rows) for c, rows in sorted(by_category.items())}
    return summary


def bootstrap_interval(values: Sequence[float], resamples: int = 2000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap confidence interval of the mean."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return None
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def mcnemar_exact(regressed: int, recovered: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs (a binomial test at 1/2)."""
    from scipy.stats import binomtest

    discordant = regressed + recovered
    if discordant == 0:
        return 1.0
    return float(binomtest(min(regressed, recovered), discordant, 0.5).pvalue)


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given.

    With m tests sorted by p ascending, the i-th (from 0) is adjusted to (m - i) * p, capped at 1
    and made non-decreasing along the sorted order; a test is rejected at level alpha when its
    adjusted p is below alpha. This keeps the chance of calling any of the m comparisons
    significant by luck (the family-wise error rate) at alpha, in every case, where Bonferroni
    does the same with less power. Written here because scipy has no Holm
    (scipy.stats.false_discovery_control is Benjamini-Hochberg, which bounds the false discovery
    rate, a weaker promise) and statsmodels is not a dependency.
    """
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def compare(base: Mapping[str, Mapping[str, float]], other: Mapping[str, Mapping[str, float]],
            resamples: int = 2000, seed: int = 0) -> dict:
    """Paired comparison of two models' per-sample scores, keyed by sample id (same corpus).
    The McNemar p is raw: whoever compares several models corrects it (holm_adjust)."""
    ids = sorted(set(base) & set(other))
    if set(base) != set(other):
        raise ValueError("the two benchmarks were not run on the same samples")
    regressed = [i for i in ids if base[i]["sequence_accuracy"] == 1 and other[i]["sequence_accuracy"] == 0]
    recovered = [i for i in ids if base[i]["sequence_accuracy"] == 0 and other[i]["sequence_accuracy"] == 1]
    p_value = mcnemar_exact(len(regressed), len(recovered))
    deltas = {}
    for metric in METRICS:
        differences = [other[i][metric] - base[i][metric] for i in ids]
        deltas[metric] = {"delta": statistics.fmean(differences) if differences else 0.0,
                          "ci95": bootstrap_interval(differences, resamples, seed)}
    return {
        "regressed": regressed,
        "recovered": recovered,
        "mcnemar_p": p_value,
        "deltas": deltas,
    }
