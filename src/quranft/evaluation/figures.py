"""How the reports (leaderboard, best.json, model cards) write figures (verses: quran.references)."""

from __future__ import annotations


def pct(value: float | None) -> str:
    """A share as a percentage with one decimal ("n/a" when there is none)."""
    return "n/a" if value is None else f"{100 * value:.1f}%"
