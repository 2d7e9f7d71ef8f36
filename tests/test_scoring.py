"""Scoring exactly as the protocol defines it, and the statistics of a comparison."""

from __future__ import annotations

import pytest

from quranft.evaluation.statistics import bootstrap_interval, compare, holm_adjust, mcnemar_exact
from quranft.matching.scoring import score_sample, summarize_scores


def span(surah: int, first: int, last: int) -> list[tuple[int, int]]:
    """A span of verses (surah s, ayah a to b) as the protocol counts it: (s, a), ..., (s, b)."""
    return [(surah, ayah) for ayah in range(first, last + 1)]


def test_worked_example_a_span_cut_short():
    score = score_sample(span(59, 22, 24), span(59, 22, 23))
    assert (score.recall, score.precision, score.sequence_accuracy) == (pytest.approx(2 / 3), 1.0, 0.0)


def test_worked_example_one_verse_too_many():
    score = score_sample([(1, 1)], span(1, 1, 2))
    assert (score.recall, score.precision, score.sequence_accuracy) == (1.0, 0.5, 0.0)


def test_exact_prediction():
    score = score_sample(span(114, 1, 6), span(114, 1, 6))
    assert (score.recall, score.precision, score.sequence_accuracy) == (1.0, 1.0, 1.0)


def test_empty_truth_scores_one_and_empty_prediction_scores_zero():
    assert score_sample([], [(1, 1)]).as_dict() == {"recall": 1.0, "precision": 1.0, "sequence_accuracy": 1.0}
    assert score_sample([], []).sequence_accuracy == 1.0
    assert score_sample([(2, 255)], []).as_dict() == {"recall": 0.0, "precision": 0.0, "sequence_accuracy": 0.0}


def test_matching_is_ordered_and_greedy():
    # Out of order: after matching (1, 3) at position 0, (1, 2) must be found after it.
    score = score_sample([(1, 2), (1, 3)], [(1, 3), (1, 2)])
    assert score.recall == 0.5 and score.precision == 0.5 and score.sequence_accuracy == 0.0
    # A miss does not move the search position.
    score = score_sample([(1, 2), (9, 9), (1, 3)], [(1, 2), (1, 3)])
    assert score.recall == pytest.approx(2 / 3) and score.precision == 1.0


def test_duplicates_count_once_each():
    # Truth says 1:1 once; a prediction repeating it matches one of its positions.
    score = score_sample([(1, 1)], [(1, 1), (1, 1)])
    assert (score.recall, score.precision) == (1.0, 0.5)
    # Truth repeating a verse needs it predicted twice.
    score = score_sample([(1, 1), (1, 1)], [(1, 1)])
    assert (score.recall, score.precision) == (0.5, 1.0)
    score = score_sample([(1, 1), (1, 1)], [(1, 1), (1, 1)])
    assert score.sequence_accuracy == 1.0


def test_corpus_figures_are_means_over_all_samples_and_per_category():
    rows = [score_sample([(1, 1)], [(1, 1)]).as_dict(), score_sample([(1, 2)], []).as_dict(),
            score_sample(span(59, 22, 24), span(59, 22, 23)).as_dict()]
    summary = summarize_scores(rows, ["short", "short", "multi"])
    assert summary["sequence_accuracy"] == pytest.approx(1 / 3)
    assert summary["recall"] == pytest.approx((1 + 0 + 2 / 3) / 3)
    assert summary["per_category"]["short"]["sequence_accuracy"] == 0.5
    assert summary["per_category"]["multi"]["samples"] == 1


def test_mcnemar_exact_values():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(0, 6) == pytest.approx(2 * 0.5**6)
    assert mcnemar_exact(3, 3) == 1.0


def test_compare_lists_regressed_and_recovered_samples():
    base = {"a": {"recall": 1, "precision": 1, "sequence_accuracy": 1},
            "b": {"recall": 0, "precision": 0, "sequence_accuracy": 0},
            "c": {"recall": 1, "precision": 1, "sequence_accuracy": 1}}
    other = {"a": {"recall": 0, "precision": 0, "sequence_accuracy": 0},
             "b": {"recall": 1, "precision": 1, "sequence_accuracy": 1},
             "c": {"recall": 1, "precision": 1, "sequence_accuracy": 1}}
    result = compare(base, other)
    assert result["regressed"] == ["a"] and result["recovered"] == ["b"]
    assert result["mcnemar_p"] == 1.0
    assert result["deltas"]["sequence_accuracy"]["delta"] == 0.0
    with pytest.raises(ValueError):
        compare(base, {"a": other["a"]})


def test_bootstrap_interval_brackets_the_mean():
    low, high = bootstrap_interval([0, 1] * 50)
    assert low < 0.5 < high
    assert bootstrap_interval([1.0] * 10) == (1.0, 1.0)
    assert bootstrap_interval([]) is None


def test_holm_adjustment_of_known_p_values():
    # By hand: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 gives 0.02, 0.03, 0.06, 0.04; the last
    # is raised to 0.06 (adjusted p never fall along the sorted order). Back in the given order:
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # at alpha 0.05 two of the four stay significant, where the raw p would call all four
    assert holm_adjust([0.5, 0.6]) == [1.0, 1.0]  # capped at 1
    assert holm_adjust([0.04]) == [0.04]  # one test: nothing to adjust
    assert holm_adjust([]) == []
