"""The verse index: every verse normalised, searchable by character n-grams and by length.

Each surah's text per variant is kept with its verse offsets (a span's text is one slice), with a
character n-gram index weighted by rarity (candidates for a transcript), the distinct texts by
length (the verses nearest a short transcript as a whole), and the identical-text groups.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from rapidfuzz import fuzz, process

from quranft.quran import tanzil
from quranft.quran.arabic import normalize

GRAM = 3  # characters per n-gram of the candidate index
BASMALA_MIN_SCORE = 70.0  # a transcript's opening this close to the basmala is taken as one (verses reach 68)


def grams(text: str) -> set[str]:
    """The text's character n-grams, padded with a space so that its first and last words' edges
    count like the others'."""
    padded = f" {text} "
    return {padded[i:i + GRAM] for i in range(len(padded) - GRAM + 1)}


@dataclass
class VerseIndex:
    """Every verse, normalised: each surah's text per variant with its verse offsets (a span's text is
    one slice), a character n-gram index, the distinct texts by length, and the identical-text groups.

    Candidates come from character n-grams rather than whole words: one character error in a
    transcript loses a word for good, but only the few n-grams that touch the error.
    """

    variants: tuple[str, ...]
    keys: list[tuple[int, int]] = field(default_factory=list)
    texts: dict[tuple[int, int], list[str]] = field(default_factory=dict)  # one per variant
    ayahs: dict[int, int] = field(default_factory=dict)  # surah -> number of ayahs
    surah_texts: dict[int, list[str]] = field(default_factory=dict)  # per variant: the verses joined by spaces
    offsets: dict[int, list[list[int]]] = field(default_factory=dict)  # per variant: each verse's start, end + 1
    gram_ids: dict[str, int] = field(default_factory=dict)
    postings: list[np.ndarray] = field(default_factory=list)  # per n-gram: the positions of its verses
    weights: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per n-gram: idf squared
    norms: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per verse: length of its weight vector
    # Only the first verse of an identical-text group is a candidate, so that a group as large as
    # Ar-Rahman's 31 refrains takes one place among the candidates and not all of them.
    distinct: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    length_texts: list[str] = field(default_factory=list)  # every distinct text, shortest first
    length_keys: list[tuple[int, int]] = field(default_factory=list)  # the first verse of each
    lengths: list[int] = field(default_factory=list)  # the length of each, for bisecting
    groups: dict[tuple[int, int], tuple[tuple[int, int], ...]] = field(default_factory=dict)
    basmala: str = ""

    @classmethod
    def build(cls, variants: tuple[str, ...] = ("simple", "uthmani")) -> "VerseIndex":
        index = cls(variants=variants)
        tables = {v: tanzil.verses(v) for v in variants}
        index.keys = sorted(tables[variants[0]])
        for surah, ayah in index.keys:
            index.texts[(surah, ayah)] = [normalize(tables[v][(surah, ayah)]) for v in variants]
            index.ayahs[surah] = max(index.ayahs.get(surah, 0), ayah)
        index._join_surahs()
        index._index_grams()
        index._group_identical()
        index.basmala = normalize(tanzil.basmala(variants[0]))
        return index

    def _join_surahs(self) -> None:
        for surah, count in self.ayahs.items():
            verses = [self.texts[(surah, a)] for a in range(1, count + 1)]
            self.surah_texts[surah] = [" ".join(texts[v] for texts in verses) for v in range(len(self.variants))]
            self.offsets[surah] = [[0, *itertools.accumulate(len(texts[v]) + 1 for texts in verses)]
                                   for v in range(len(self.variants))]

    def _index_grams(self) -> None:
        postings: dict[str, list[int]] = defaultdict(list)
        for position, key in enumerate(self.keys):
            for gram in set().union(*(grams(text) for text in self.texts[key])):
                postings[gram].append(position)
        self.gram_ids = {gram: number for number, gram in enumerate(postings)}
        self.postings = [np.array(p, dtype=np.int32) for p in postings.values()]
        self.weights = np.array([math.log(len(self.keys) / len(p)) ** 2 for p in postings.values()])
        self.norms = np.sqrt(np.bincount(np.concatenate(self.postings), minlength=len(self.keys),
                                         weights=np.repeat(self.weights, [len(p) for p in self.postings])))

    def _group_identical(self) -> None:
        by_text: dict[str, list[tuple[int, int]]] = defaultdict(list)
        first_key: dict[str, tuple[int, int]] = {}
        for key in self.keys:
            by_text[self.texts[key][0]].append(key)
            for text in self.texts[key]:
                first_key.setdefault(text, key)
        for members in by_text.values():
            if len(members) > 1:
                for key in members:
                    self.groups[key] = tuple(members)
        self.distinct = np.array([self.groups.get(key, (key,))[0] == key for key in self.keys])
        for text, key in sorted(first_key.items(), key=lambda item: (len(item[0]), item[1])):
            self.length_texts.append(text)
            self.length_keys.append(key)
            self.lengths.append(len(text))

    def identical_groups(self) -> list[tuple[tuple[int, int], ...]]:
        return sorted(set(self.groups.values()))

    def span_lengths(self, surah: int, first: int, last: int, basmala_said: bool = False) -> tuple[int, int]:
        """The lengths of the span's shortest and longest text (as `span_texts` gives them)."""
        lengths = [ends[last] - ends[first - 1] - 1 for ends in self.offsets[surah]]
        opening = len(self.basmala) + 1 if self.with_basmala(surah, first, basmala_said) else 0
        return min(lengths), max(lengths) + opening

    @staticmethod
    def with_basmala(surah: int, first: int, basmala_said: bool) -> bool:
        """Whether a span may be heard after the basmala: from a surah's ayah 1, or anywhere when the
        basmala was said (a reciter may say it before starting mid-surah). Never in Al-Fatiha, whose
        first verse is the basmala: a basmala before 1:k is a recitation of 1:1-k."""
        return surah != 1 and (basmala_said or (first == 1 and surah != 9))

    def span_texts(self, surah: int, first: int, last: int, basmala_said: bool = False) -> list[tuple[str, bool]]:
        """The span's distinct texts over the variants, and each with the basmala before it where
        `with_basmala` allows."""
        joined = dict.fromkeys(text[ends[first - 1]:ends[last] - 1]
                               for text, ends in zip(self.surah_texts[surah], self.offsets[surah]))
        out = [(text, False) for text in joined]
        if self.with_basmala(surah, first, basmala_said):
            out += [(f"{self.basmala} {text}", True) for text in joined]
        return out

    def candidates(self, query: str, limit: int) -> list[tuple[int, int]]:
        """Verses whose n-grams the query covers best: the summed weights of the shared n-grams over
        the verse's norm, so that rare n-grams weigh more and a long verse needs more of them."""
        ids = [self.gram_ids[g] for g in grams(query) if g in self.gram_ids]
        if not ids:
            return []
        lists = [self.postings[i] for i in ids]
        shared = np.bincount(np.concatenate(lists), weights=np.repeat(self.weights[ids], [len(p) for p in lists]),
                             minlength=len(self.keys))
        scores = np.where(self.distinct, shared / self.norms, 0.0)
        limit = min(limit, np.count_nonzero(scores))
        best = np.argpartition(-scores, limit - 1)[:limit]
        return [self.keys[p] for p in sorted(best.tolist(), key=lambda p: (-scores[p], p))]

    def nearest(self, query: str, limit: int) -> list[tuple[int, int]]:
        """Single verses closest to the whole query by edit similarity. Catches the short verses whose
        few n-grams a character error can all destroy. Only texts within 60% (and two characters) of
        the query's length are compared, as for spans; the rest could not score 77."""
        low = bisect.bisect_left(self.lengths, (len(query) - 2) / 1.6)
        high = bisect.bisect_right(self.lengths, 1.6 * len(query) + 2)
        found = process.extract(query, self.length_texts[low:high], scorer=fuzz.ratio, limit=limit)
        return [self.length_keys[low + position] for _, _, position in found]

    def after_basmala(self, query: str) -> str | None:
        """What follows the basmala when the query opens with it (character errors allowed), else None."""
        size = len(self.basmala)
        cuts = range(max(1, size - 6), min(len(query), size + 6) + 1)
        score, cut = max(((fuzz.ratio(query[:c], self.basmala), c) for c in cuts), default=(0.0, 0))
        return query[cut:].strip() if score >= BASMALA_MIN_SCORE else None


@lru_cache(maxsize=None)
def default_index() -> VerseIndex:
    """The verse index, built once per process (about a second)."""
    return VerseIndex.build()
