"""The verse a dataset row recites, from its surah/ayah columns or from its text.

A row with surah and ayah numbers takes them (checked against the Tanzil text). A row with text
is matched after the protocol's normalisation (quranft.quran.arabic.normalize): first exactly, against
every verse in the Tanzil "simple" and "uthmani" variants, then by the best fuzzy match (rapidfuzz's
normalised edit similarity, 0-100) above a threshold. A surah column, where there is one, restricts
the search to that surah (RetaSy names the surah and gives the aya's text). A text that opens with
the basmala is matched without it: the basmala is said and skipped, and the truth is the verse
alone (in Al-Fatiha, where the basmala is the first verse, such a row recites two verses).

A row whose verse cannot be told is skipped with a reason: no text, a surah name or number that
names no surah, no verse close enough, or a text shared by several verses (an identical-text group
that no surah column narrows down to one).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from rapidfuzz import fuzz

from quranft.matching.verse_index import VerseIndex
from quranft.quran import tanzil
from quranft.quran.arabic import normalize

CANDIDATES = 12  # verses taken from the n-gram index and from whole-text similarity each


@dataclass(frozen=True)
class RowVerse:
    """Where a row's verse came from, or why it was skipped (then `verse` is None)."""

    verse: tuple[int, int] | None
    how: str | None = None  # columns, exact or fuzzy
    score: float = 100.0  # similarity of the text to the verse (100 for columns and exact)
    basmala_said: bool = False
    skip: str | None = None  # the reason, when skipped


def skipped(reason: str, score: float = 0.0) -> RowVerse:
    return RowVerse(None, score=score, skip=reason)


class VerseResolver:
    """Finds the verse of a row; built once per corpus (the verse index takes about a second)."""

    def __init__(self, index: VerseIndex, min_score: float):
        self.index = index
        self.min_score = min_score
        self.exact: dict[str, set[tuple[int, int]]] = defaultdict(set)
        self.by_surah: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for key in index.keys:
            for text in index.texts[key]:
                self.exact[text].add(key)
            self.by_surah[key[0]].append(key)

    def from_columns(self, surah: int, ayah: int) -> RowVerse:
        if (surah, ayah) not in self.index.texts:
            return skipped("verse_not_in_quran")
        return RowVerse((surah, ayah), how="columns")

    def from_text(self, text: str, surah: int | None = None) -> RowVerse:
        """The verse recited in `text`, within `surah` when it is given."""
        basmala, rest = tanzil.split_basmala(" ".join(text.split()))
        said = bool(basmala and rest)
        query = normalize(rest if said else text)
        if not query:
            return skipped("empty_text")
        exact = sorted(key for key in self.exact.get(query, ()) if surah is None or key[0] == surah)
        if exact:
            return self._one(exact, "exact", 100.0, said)
        keys = self.by_surah[surah] if surah is not None else self._candidates(query)
        if not keys:
            return skipped("no_matching_verse")
        score, best = max((max(fuzz.ratio(query, t) for t in self.index.texts[key]), key) for key in keys)
        if score < self.min_score:
            return skipped("no_matching_verse", score)
        group = self.index.groups.get(best, (best,))
        return self._one([key for key in group if surah is None or key[0] == surah], "fuzzy", score, said)

    def _candidates(self, query: str) -> list[tuple[int, int]]:
        found = self.index.candidates(query, CANDIDATES) + self.index.nearest(query, CANDIDATES)
        return sorted(set(found))

    @staticmethod
    def _one(keys: list[tuple[int, int]], how: str, score: float, said: bool) -> RowVerse:
        if len(keys) > 1:
            return skipped("ambiguous_text", score)
        if said and keys[0][0] == 1:
            return skipped("several_verses", score)  # Al-Fatiha's basmala is its first verse
        return RowVerse(keys[0], how=how, score=round(score, 2), basmala_said=said)
