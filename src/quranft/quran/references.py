"""How verses are written for people: surah:ayah, runs as surah:first-last, with the surah's name."""

from __future__ import annotations

from collections.abc import Sequence

from quranft.quran.surah_names import NAMES


def verses_label(verses: Sequence[Sequence[int]] | None) -> str:
    """Verses as surah:ayah, a run of one surah as surah:first-last ("1:2-4"); "none" when empty."""
    runs: list[list[int]] = []  # [surah, first, last]
    for surah, ayah in verses or []:
        if runs and runs[-1][0] == surah and runs[-1][2] + 1 == ayah:
            runs[-1][2] = ayah
        else:
            runs.append([surah, ayah, ayah])
    return ", ".join(f"{s}:{a}" if a == b else f"{s}:{a}-{b}" for s, a, b in runs) or "none"


def surah_labels(verses: Sequence[Sequence[int]]) -> list[str]:
    """The names of the verses' surahs, in order, once each: "Al-Faatiha (الفاتحة)"."""
    labels: list[str] = []
    for surah, _ in verses:
        label = f"{NAMES[surah - 1][0]} ({NAMES[surah - 1][1]})"
        if label not in labels:
            labels.append(label)
    return labels
