"""The statistics that compare two models' per-sample scores on the same corpus: bootstrap
intervals, the exact McNemar test on SeqAcc, Holm's adjustment across several comparisons, and the
confidence interval of a paired difference of proportions behind the non-inferiority bound of an
export (paired_difference_interval, non_inferiority).

The interval for a paired difference of proportions is Tango's asymptotic score interval (Tango
1998, Statistics in Medicine 17:891-908): the differences d whose score test of "the difference
is d" is not rejected, the variance taken at the maximum-likelihood estimate constrained to d. It
is the interval of the score test of non-inferiority for paired binary outcomes (Nam 1997, Tango
1998), which is the question an export's bound asks ("is the loss below the margin?"), and Fagerland,
Lydersen and Laake ("Recommended tests and confidence intervals for paired binomial proportions",
Statistics in Medicine 2014, 33:2850-2875) recommend it for the paired difference for its coverage close to the nominal level. It
stays informative with no discordant pair at all, the common case of an export that computes what
its .nemo does: then its upper end is z^2 / (n + z^2) (4.2 points on 87 clips), where the Wald
interval collapses to zero width and would call any export equivalent. Newcombe's hybrid score
interval (method 10) behaves too, but depends on the concordant counts, which say nothing about
the difference. Written here with scipy's root finder because neither scipy nor statsmodels 0.15
has an interval for paired proportions (statsmodels' confint_proportions_paired is unreleased).
"""

from __future__ import annotations

import math
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


def _tango_statistic(delta: float, first_only: int, second_only: int, n: int) -> float:
    """Tango's score statistic of "the difference of proportions (first minus second) is `delta`",
    from the discordant counts: decreasing in delta."""
    # the share of second-only samples that maximises the likelihood given the difference delta:
    # the positive root of quadratic * x^2 + linear * x + constant (Tango 1998)
    quadratic = 2 * n
    linear = -first_only - second_only + (2 * n - first_only + second_only) * delta
    constant = -second_only * delta * (1 - delta)
    second_only_share = (math.sqrt(max(linear * linear - 4 * quadratic * constant, 0.0)) - linear) / (2 * quadratic)
    variance = n * (2 * second_only_share + delta * (1 - delta))
    return (first_only - second_only - n * delta) / math.sqrt(variance) if variance > 0 else 0.0


def paired_difference_interval(first: Sequence[int], second: Sequence[int], level: float = 0.95) -> dict:
    """Tango's score interval (see the module's docstring) of the difference of two paired
    proportions, mean(first) - mean(second), from each sample's 0/1 outcome in `first` and in
    `second` (the same samples, in the same order): {"samples", "first_only", "second_only",
    "estimate", "ci": (lower, upper), "level"}. `first_only`: samples that are 1 in `first`
    only. With an export's SeqAcc hits as `second` and its .nemo's as `first`, the difference is
    the export's SeqAcc loss."""
    from scipy.optimize import brentq
    from scipy.stats import norm

    if len(first) != len(second):
        raise ValueError(f"paired outcomes of different lengths: {len(first)} and {len(second)}")
    if not first:
        raise ValueError("no paired outcomes: an interval needs at least one sample")
    values = {int(v) for v in (*first, *second)}
    if not values <= {0, 1}:
        raise ValueError(f"paired outcomes must be 0 or 1; got {sorted(values - {0, 1})}")
    n = len(first)
    first_only = sum(1 for x, y in zip(first, second) if x and not y)
    second_only = sum(1 for x, y in zip(first, second) if y and not x)
    z = float(norm.ppf(1 - (1 - level) / 2))
    estimate = (first_only - second_only) / n
    edge = 1e-12

    def bound(target: float) -> float:
        return brentq(lambda d: _tango_statistic(d, first_only, second_only, n) - target, -1 + edge, 1 - edge,
                      xtol=1e-12)

    if first_only == second_only == 0:  # the statistic's roots in closed form: +-z^2 / (n + z^2)
        lower, upper = -z * z / (n + z * z), z * z / (n + z * z)
    else:
        lower = -1.0 if estimate == -1 else bound(z)
        upper = 1.0 if estimate == 1 else bound(-z)
    return {"samples": n, "first_only": first_only, "second_only": second_only, "estimate": estimate,
            "ci": (lower, upper), "level": level}


def non_inferiority(reference: Sequence[int], other: Sequence[int], margin: float, level: float = 0.95) -> dict:
    """Whether `other` is shown to lose less than `margin` against `reference` (paired 0/1
    outcomes of the same samples): the upper end of the `level` interval of the loss
    mean(reference) - mean(other), the bound, is below the margin (a one-sided test at
    (1 - level) / 2; a bound equal to the margin is not below it). Also the least bound these many
    samples allow (every pair agreeing: z^2 / (n + z^2)), whether it is below the margin (whether
    the samples can show the margin at all), and the fewest samples that can. One test for every
    "is this within the margin of that" on paired hits: an export against its .nemo, the browser's
    figures against Python's, long-form verse hits."""
    from scipy.stats import norm

    if not 0 < margin < 1:
        raise ValueError(f"the margin must be a share between 0 and 1; got {margin}")
    interval = paired_difference_interval(reference, other, level)
    z = float(norm.ppf(1 - (1 - level) / 2))
    least = paired_difference_interval([0] * len(reference), [0] * len(reference), level)["ci"][1]
    upper = interval["ci"][1]
    return {"samples": interval["samples"], "reference_only": interval["first_only"],
            "other_only": interval["second_only"], "loss": interval["estimate"], "ci": list(interval["ci"]),
            "level": level, "margin": margin, "bound": upper, "fit": upper < margin,
            "least_bound": least, "resolvable": least < margin,
            "samples_needed": math.floor(z * z * (1 - margin) / margin) + 1}


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
