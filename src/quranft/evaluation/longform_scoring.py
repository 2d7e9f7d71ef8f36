"""Scoring continuous recitation: the verses found in a session against the verses recited, each
with its true start and end.

Per session, with the recited verses R (in order, each with its interval) and the found verses F:

- A found verse counts once, when it names a recited verse and overlaps its true interval: each
  recited verse, in order, takes the first found verse not yet counted that does (`match`).
  recall = matched / |R|, precision = matched / |F|, F1 their harmonic mean.
- Verse error rate: the edit distance between the recited and the found sequences of verse numbers
  (rapidfuzz's Levenshtein on the sequences), over |R|: a verse missed, added or put in another's
  place costs one each, whatever the times.
- Boundary error of the verses matched: |found start - true start| and |found end - true end|, in
  milliseconds, pooled; median and p90.
- False verses per minute of non-recitation: found verses that overlap no recited verse, over the
  minutes of the session outside every recited verse (pauses, silence, noise, other speech).
- Retractions (streamed): emitted verses that a verse emitted later overlaps (`retractions`).

The corpus figures pool the sessions (recall and precision over all verses, the boundaries over all
matched ones), and keep each session's own, with which of its recited verses were found (`hits`, in
recitation order), for the paired tests (evaluation.longform_board).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rapidfuzz.distance import Levenshtein

Verse = tuple[int, int]


@dataclass(frozen=True)
class Timed:
    """A verse with its interval, recited or found."""
    surah: int
    ayah: int
    start: float
    end: float

    @property
    def verse(self) -> Verse:
        return self.surah, self.ayah

    def overlaps(self, other: Timed) -> bool:
        return self.start < other.end and other.start < self.end


def match(recited: Sequence[Timed], found: Sequence[Timed]) -> list[tuple[int, int]]:
    """(recited index, found index) of each recited verse matched (module docstring)."""
    used: set[int] = set()
    pairs = []
    for i, truth in enumerate(recited):
        for j, guess in enumerate(found):
            if j not in used and guess.verse == truth.verse and guess.overlaps(truth):
                used.add(j)
                pairs.append((i, j))
                break
    return pairs


def non_recitation_seconds(recited: Sequence[Timed], seconds: float) -> float:
    """The session's seconds outside every recited verse."""
    covered, until = 0.0, 0.0
    for verse in sorted(recited, key=lambda v: v.start):
        start, end = max(verse.start, until), min(verse.end, seconds)
        if end > start:
            covered += end - start
        until = max(until, verse.end)
    return max(0.0, seconds - covered)


def score_session(recited: Sequence[Timed], found: Sequence[Timed], seconds: float) -> dict:
    """One session's counts and figures (module docstring)."""
    pairs = match(recited, found)
    false = [g for g in found if not any(g.overlaps(t) for t in recited)]
    errors = [abs(found[j].start - recited[i].start) * 1000 for i, j in pairs] + \
             [abs(found[j].end - recited[i].end) * 1000 for i, j in pairs]
    edits = Levenshtein.distance([t.verse for t in recited], [g.verse for g in found])
    hits = [0] * len(recited)
    for i, _ in pairs:
        hits[i] = 1
    return {"recited": len(recited), "found": len(found), "matched": len(pairs), "edits": edits, "hits": hits,
            "false_verses": len(false), "non_recitation_seconds": round(non_recitation_seconds(recited, seconds), 3),
            "boundary_errors_ms": [round(e, 1) for e in errors], **figures(len(recited), len(found), len(pairs))}


def retractions(emitted: Sequence[Timed], emitted_at: Sequence[float]) -> int:
    """How many emitted verses a later emission takes back: an earlier verse whose interval a verse
    emitted after it overlaps (withdrawn, or replaced by another reading of the same audio). An
    app shows each verse when it is emitted; any such overlap is a verse it would have to retract."""
    return sum(1 for i, verse in enumerate(emitted)
               if any(emitted_at[j] > emitted_at[i] and emitted[j].overlaps(verse) for j in range(len(emitted))))


def figures(recited: int, found: int, matched: int) -> dict:
    recall = matched / recited if recited else None
    precision = matched / found if found else None
    f1 = (2 * recall * precision / (recall + precision)) if recall and precision else 0.0
    return {"recall": recall, "precision": precision, "f1": f1}


def summarize(sessions: Sequence[dict]) -> dict:
    """The pooled figures of scored sessions (score_session's)."""
    recited = sum(s["recited"] for s in sessions)
    found = sum(s["found"] for s in sessions)
    matched = sum(s["matched"] for s in sessions)
    errors = [e for s in sessions for e in s["boundary_errors_ms"]]
    minutes = sum(s["non_recitation_seconds"] for s in sessions) / 60
    false = sum(s["false_verses"] for s in sessions)
    return {"sessions": len(sessions), "recited": recited, "found": found, "matched": matched,
            **figures(recited, found, matched),
            "verse_error_rate": sum(s["edits"] for s in sessions) / recited if recited else None,
            "boundary_error_ms": {"median": float(np.median(errors)) if errors else None,
                                  "p90": float(np.percentile(errors, 90)) if errors else None},
            "false_verses": false, "non_recitation_minutes": round(minutes, 3),
            "false_verses_per_minute": false / minutes if minutes else None}
