"""Scoring as the benchmark protocol defines it: each sample's predicted verses against the truth.

Per sample: ordered greedy matching of the expected verses E against the predicted verses P.
recall = matches / |E|; precision = distinct matched positions of P / |P|; SeqAcc = 1 when P == E.
Empty E scores 1/1/1; empty P (with E not empty) scores 0/0/0. Corpus figures are unweighted means
over all samples, failed ones included, and per category.

Negatives (the protocol has none): a sample whose right answer is no verse (empty E: silence,
noise, speech that is not Quran) would score 1/1/1 whatever was predicted, so negatives stay out of
the protocol's means (which stay comparable with the seed's) and are counted apart: a false accept
is a negative for which any verse is predicted.

With a Rejection (matching.rejection), a prediction is no verse when the clip holds too little
speech (the row's `speech_seconds`, from the voice-activity detector) or when its confidence is
under the threshold; each row records its confidence and why it was refused.

`score_rows` runs a matcher over transcribed rows and scores them: a failed sample (its row carries
an error) scores 0 and is counted by kind, an error inside a matcher likewise (kind `matcher`), and
a wrong single verse whose text is identical to the expected one is flagged. The benchmark and
re-scoring both score through it, so that the two give the same predictions.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from quranft.matching.rejection import Rejection, prediction_confidence
from quranft.matching.text_matcher import Match, TextMatcher
from quranft.matching.verse_index import VerseIndex

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


def summarize_scores(scores: Sequence[Mapping[str, float]], categories: Sequence[str] | None = None) -> dict:
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




def predict(matcher: str, transcript: str, log_probs, index: VerseIndex, text_matcher: TextMatcher,
            ctc_matcher) -> Match:
    """One transcript's verses by the named matcher (`ctc_matcher`: a CTCMatcher, for "ctc")."""
    if matcher == "text":
        return text_matcher.match(transcript, index)
    if ctc_matcher is None:
        raise ValueError("the ctc matcher needs the model's tokenizer")
    return ctc_matcher.match(transcript, log_probs, index, text_matcher)


def judged_verses(match: Match, row: Mapping[str, Any], clip_log_probs, ctc_matcher,
                  rejection: Rejection | None) -> tuple[tuple[Verse, ...], dict[str, Any]]:
    """The verses a prediction stands for once judged by `rejection` (none when refused), and what
    the row records of the judgement (confidence, refused)."""
    if rejection is None:
        return tuple(match.verses), {}
    confidence = prediction_confidence(clip_log_probs, match.verses, ctc_matcher) if ctc_matcher else None
    refused = rejection.verdict(row.get("speech_seconds"), confidence) if match.verses else None
    record = {"confidence": confidence, "refused": refused}
    if refused:
        record["refused_verses"] = [list(v) for v in match.verses]
    return (() if refused else tuple(match.verses)), record


def _score_row(row: dict[str, Any], matcher: str, index: VerseIndex, text_matcher: TextMatcher, ctc_matcher,
               log_probs: Mapping[str, np.ndarray], rejection: Rejection | None = None,
               ) -> tuple[SampleScore, dict[str, Any]]:
    """One row's score by one matcher, and what the row records of it; never raises."""
    if row.get("error"):
        return FAILED, {}
    result: dict[str, Any] = {}
    try:
        started = time.perf_counter()
        match = predict(matcher, row["transcript"], log_probs.get(row["id"]), index, text_matcher, ctc_matcher)
        verses, judgement = judged_verses(match, row, log_probs.get(row["id"]), ctc_matcher, rejection)
        result["seconds"] = round(time.perf_counter() - started, 6)
        score = score_sample([tuple(v) for v in row["expected"]], verses)
        result.update(predicted=[list(v) for v in verses], score=round(match.score, 4),
                      with_basmala=match.with_basmala, **judgement)
        if not row["expected"]:
            result["false_accept"] = bool(verses)
        if score.sequence_accuracy == 0 and len(verses) == 1 and len(row["expected"]) == 1:
            if verses[0] in index.groups.get(tuple(row["expected"][0]), ()):
                result["identical_text_group"] = True
    except Exception as error:  # one sample's failure must not stop the benchmark
        return FAILED, {"error": f"{type(error).__name__}: {error}", "error_kind": "matcher"}
    return score, result


def is_negative(row: Mapping[str, Any]) -> bool:
    """A sample whose right answer is no verse."""
    return not row["expected"]


def negatives_summary(rows: list[dict[str, Any]], matcher: str) -> dict[str, Any]:
    """How many negatives the matcher named a verse for (false accepts), and their share."""
    negatives = [row for row in rows if is_negative(row)]
    accepted = [row["id"] for row in negatives if row["matchers"][matcher].get("false_accept")]
    return {"samples": len(negatives), "false_accepts": len(accepted),
            "false_accept_rate": len(accepted) / len(negatives) if negatives else None, "accepted": accepted}


def score_rows(rows: list[dict[str, Any]], matchers: tuple[str, ...], index: VerseIndex,
               text_matcher: TextMatcher, ctc_matcher, log_probs: Mapping[str, np.ndarray] | None,
               rejection: Rejection | None = None) -> dict[str, Any]:
    """Fill each row's predictions and scores per matcher (rows carry id, category, expected,
    transcript, error and error_kind; `speech_seconds` where the clip went through the voice-activity
    detector); return the per-matcher summaries: the protocol's means over the recitations, the
    negatives' false accepts, the failed samples by kind and the errors within identical-text groups."""
    summaries = {}
    for matcher in matchers:
        scores, categories = [], []
        errors: Counter[str] = Counter()
        for row in rows:
            score, result = _score_row(row, matcher, index, text_matcher, ctc_matcher, log_probs or {}, rejection)
            kind = row["error_kind"] if row.get("error") else result.get("error_kind")
            if kind:
                errors[kind] += 1
            result.update(score.as_dict())
            row.setdefault("matchers", {})[matcher] = result
            if not is_negative(row):
                scores.append(score.as_dict())
                categories.append(row["category"])
        summary = summarize_scores(scores, categories)
        summary["negatives"] = negatives_summary(rows, matcher)
        summary["errors"] = dict(sorted(errors.items()))
        summary["errors_in_identical_text_groups"] = sum(
            bool(row["matchers"][matcher].get("identical_text_group")) for row in rows)
        summaries[matcher] = summary
    return summaries
