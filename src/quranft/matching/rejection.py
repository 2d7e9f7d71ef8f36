"""No verse for what is not recitation: a clip's predicted verses kept only when it holds speech and
their confidence reaches a threshold chosen on validation data.

A prediction's confidence is that of its token sequences (`token_sequences`: per text variant,
with and without the basmala) placed in the clip's log-probs by CTC segmentation
(quranft.matching.alignment): in [0, 1], per frame, not growing with the clip's length; the best
of its sequences. The verse segmenter gives each verse it finds the same confidence, so one
threshold serves both.

The threshold is chosen on the validation clips, never on the benchmark corpus: the confidences of
the verses predicted right on validation recitations (the positives) against those of whatever is
predicted on validation negatives (silence, noise, and the validation clips played backwards:
speech-like sound in no language). It is the one that best separates them (the largest sum of the
share of positives kept and the share of negatives refused; Youden's J), in the middle of the
widest stretch of thresholds that do so equally well.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from quranft.data.vad import MIN_SPEECH_SECONDS
from quranft.matching.alignment import align
from quranft.quran import tanzil

Verse = tuple[int, int]
DEFAULT_THRESHOLD = 0.6  # the segmenter's MIN_CONFIDENCE: where no validation data chose one


@dataclass(frozen=True)
class Rejection:
    """When a prediction is no verse: too little speech, or a confidence under the threshold."""

    threshold: float = DEFAULT_THRESHOLD
    min_speech_seconds: float = MIN_SPEECH_SECONDS
    chosen_on: dict = field(default_factory=dict)  # how the threshold was chosen (choose_threshold)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict | None) -> Rejection | None:
        return None if record is None else cls(record["threshold"], record["min_speech_seconds"],
                                               record.get("chosen_on", {}))

    def verdict(self, speech_seconds: float | None, confidence: float | None) -> str | None:
        """Why the prediction is no verse ("no speech", "low confidence"), or None when it stands."""
        if speech_seconds is not None and speech_seconds < self.min_speech_seconds:
            return "no speech"
        if confidence is not None and confidence < self.threshold:
            return "low confidence"
        return None


def token_sequences(verses: tuple[Verse, ...], ctc_matcher) -> list[list[int]]:
    """The verses' token sequences: the CTC matcher's (with and without the basmala, the characters
    the tokenizer lacks mapped) and, per text variant, the text as the tokenizer writes it (what a
    model trained on the text as it is emits), as the verse segmenter places them."""
    tokenizer = ctc_matcher.tokenizer
    plain = [tokenizer.text_to_ids(" ".join(tanzil.verse(s, a, variant) for s, a in verses))
             for variant in ctc_matcher.variants]
    sequences = [*ctc_matcher.targets(verses), *(ids for ids in plain if tokenizer.unk_id not in ids)]
    return [list(t) for t in dict.fromkeys(tuple(t) for t in sequences if t)]


def prediction_confidence(log_probs: np.ndarray | None, verses: Sequence[Verse], ctc_matcher) -> float | None:
    """The confidence of the predicted verses in the clip (the best of their token sequences), 0
    when none fits; None without log-probs or verses (nothing to judge)."""
    if log_probs is None or len(log_probs) == 0 or not verses:
        return None
    log_probs = np.asarray(log_probs, dtype=np.float32)
    best = 0.0
    for tokens in token_sequences(tuple(tuple(v) for v in verses), ctc_matcher):
        placed = align(log_probs, list(tokens), ctc_matcher.blank)
        if placed is not None:
            best = max(best, placed.confidence)
    return round(best, 6)


def choose_threshold(positives: Sequence[float], negatives: Sequence[float]) -> dict:
    """The threshold that best separates the positives' confidences from the negatives' (module
    docstring), with what it was chosen on and how well it does there."""
    pos, neg = np.sort(np.asarray(positives, float)), np.sort(np.asarray(negatives, float))
    if not len(pos) or not len(neg):
        return {"threshold": DEFAULT_THRESHOLD, "positives": len(pos), "negatives": len(neg),
                "rule": "the default: no validation positives or negatives to choose by"}
    edges = np.unique(np.concatenate([[0.0, 1.0 + 1e-9], pos, neg]))  # J is constant between edges
    # A prediction stands when its confidence >= the threshold: every threshold in (edges[i],
    # edges[i + 1]] keeps and refuses what edges[i + 1] does.
    kept = 1.0 - np.searchsorted(pos, edges[1:], side="left") / len(pos)
    refused = np.searchsorted(neg, edges[1:], side="left") / len(neg)
    j = np.round(kept + refused - 1.0, 12)
    best = np.flatnonzero(j == j.max())
    # Stretches of equal J are adjacent edges; the widest one's middle.
    runs = np.split(best, np.flatnonzero(np.diff(best) > 1) + 1)
    widths = [edges[run[-1] + 1] - edges[run[0]] for run in runs]
    run = runs[int(np.argmax(widths))]
    threshold = float(min(1.0, (edges[run[0]] + edges[run[-1] + 1]) / 2))
    threshold = round(threshold, 4)
    return {"threshold": threshold, "positives": len(pos), "negatives": len(neg),
            "positives_kept": round(float(np.mean(pos >= threshold)), 4),
            "negatives_refused": round(float(np.mean(neg < threshold)), 4),
            "rule": "Youden's J (positives kept + negatives refused - 1) at its largest, the middle of the widest "
                    "stretch of thresholds that reach it"}
