"""The statistics that compare two models' per-sample scores on the same corpus: bootstrap
intervals, the exact McNemar test on SeqAcc, and Holm's adjustment across several comparisons."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

import numpy as np

from quranft.matching.scoring import METRICS


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
