"""How the reports (leaderboard, best.json, model cards) write figures and verses."""

from __future__ import annotations

from collections.abc import Sequence


def pct(value: float | None) -> str:
    """A share as a percentage with one decimal ("n/a" when there is none)."""
    return "n/a" if value is None else f"{100 * value:.1f}%"


def verses_label(verses: Sequence[Sequence[int]] | None) -> str:
    """Verses as surah:ayah, a run of one surah as surah:first-last ("1:2-4"); "none" when empty."""
    runs: list[list[int]] = []  # [surah, first, last]
    for surah, ayah in verses or []:
        if runs and runs[-1][0] == surah and runs[-1][2] + 1 == ayah:
            runs[-1][2] = ayah
        else:
            runs.append([surah, ayah, ayah])
    return ", ".join(f"{s}:{a}" if a == b else f"{s}:{a}-{b}" for s, a, b in runs) or "none"
