"""From transcript to verses: normalisation, the verse index, and the text matcher.

Normalisation follows the benchmark protocol: tashkeel, the superscript alef and the Quranic small
marks, tatweel, BOM and punctuation are stripped; alef variants (alef wasla included) become bare
alef; ta marbuta and alef maqsura are folded the same way on both sides.

The text matcher scores spans of consecutive verses of any length against the whole transcript:
candidate verses come from an inverted index of words (weighted by rarity), each candidate grows
into spans around it, and rapidfuzz's normalised edit similarity ranks the spans. The basmala is
handled both ways: ayah 1 of every surah but Al-Fatiha and At-Tawba is matched with and without
it, and a transcript that opens with the basmala is also matched without it.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache

from rapidfuzz import fuzz

from quranft import quran_text

MATCHER_VERSION = "1.0"

_TASHKEEL = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u08d3-\u08ff\u0640\ufeff\u200b-\u200f]")
_ALEFS = str.maketrans({"\u0623": "\u0627", "\u0625": "\u0627", "\u0622": "\u0627", "\u0671": "\u0627",
                        "\u0672": "\u0627", "\u0673": "\u0627", "\u0675": "\u0627",
                        "\u0629": "\u0647", "\u0649": "\u064a"})
_NOT_ARABIC_LETTER = re.compile(r"[^\u0621-\u064a\s]")


def normalize(text: str) -> str:
    """The protocol's normalisation: bare letters, single spaces."""
    text = _TASHKEEL.sub("", text).translate(_ALEFS)
    text = _NOT_ARABIC_LETTER.sub(" ", text)
    return " ".join(text.split())


@dataclass(frozen=True)
class Match:
    verses: tuple[tuple[int, int], ...]  # in recitation order; empty when nothing matched
    score: float  # 0..100
    with_basmala: bool = False


@dataclass
class VerseIndex:
    """Every verse, normalised, with an inverted word index and the identical-text groups."""

    variants: tuple[str, ...]
    keys: list[tuple[int, int]] = field(default_factory=list)
    texts: dict[tuple[int, int], list[str]] = field(default_factory=dict)  # one per variant
    ayahs: dict[int, int] = field(default_factory=dict)  # surah -> number of ayahs
    postings: dict[str, list[int]] = field(default_factory=dict)
    idf: dict[str, float] = field(default_factory=dict)
    norms: list[float] = field(default_factory=list)  # per verse: length of its word-weight vector
    groups: dict[tuple[int, int], tuple[tuple[int, int], ...]] = field(default_factory=dict)
    basmala: str = ""

    @classmethod
    def build(cls, variants: tuple[str, ...] = ("simple", "uthmani")) -> "VerseIndex":
        index = cls(variants=variants)
        tables = {v: quran_text.verses(v) for v in variants}
        index.keys = sorted(tables[variants[0]])
        postings: dict[str, set[int]] = defaultdict(set)
        by_text: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for position, key in enumerate(index.keys):
            texts = [normalize(tables[v][key]) for v in variants]
            index.texts[key] = texts
            index.ayahs[key[0]] = max(index.ayahs.get(key[0], 0), key[1])
            for text in texts:
                for word in text.split():
                    postings[word].add(position)
            by_text[texts[0]].append(key)
        index.postings = {w: sorted(p) for w, p in postings.items()}
        total = len(index.keys)
        index.idf = {w: math.log(total / len(p)) for w, p in index.postings.items()}
        index.norms = [
            math.sqrt(sum(index.idf[w] ** 2 for w in {w for text in index.texts[key] for w in text.split()})) or 1.0
            for key in index.keys
        ]
        for members in by_text.values():
            if len(members) > 1:
                for key in members:
                    index.groups[key] = tuple(members)
        index.basmala = normalize(quran_text.basmala(variants[0]))
        return index

    def identical_groups(self) -> list[tuple[tuple[int, int], ...]]:
        return sorted(set(self.groups.values()))

    def span_texts(self, surah: int, first: int, last: int) -> list[tuple[str, bool]]:
        """The span's text in each variant, and with the basmala when it starts at a surah's ayah 1."""
        joined = [" ".join(self.texts[(surah, a)][v] for a in range(first, last + 1)) for v in range(len(self.variants))]
        out = [(text, False) for text in joined]
        if first == 1 and surah not in (1, 9):
            out += [(f"{self.basmala} {text}", True) for text in joined]
        return out

    def candidates(self, words: list[str], limit: int) -> list[tuple[int, int]]:
        """Verses whose words the transcript covers best (rare words weigh more; cosine-like)."""
        scores: dict[int, float] = defaultdict(float)
        for word in set(words):
            weight = self.idf.get(word)
            if weight is None:
                continue
            for position in self.postings[word]:
                scores[position] += weight * weight
        best = sorted(((p, s / self.norms[p]) for p, s in scores.items()), key=lambda item: (-item[1], item[0]))[:limit]
        return [self.keys[position] for position, _ in best]


@lru_cache(maxsize=None)
def default_index() -> VerseIndex:
    """The verse index, built once per process (about a second)."""
    return VerseIndex.build()


@dataclass(frozen=True)
class TextMatcher:
    """Span matcher over normalised text."""

    candidates: int = 12
    max_span: int | None = None  # None: spans of any length
    min_score: float = 55.0
    span_penalty: float = 0.1  # points per extra verse, so that ties go to the shorter span
    name: str = "text"

    def settings(self) -> dict:
        return {"candidates": self.candidates, "max_span": self.max_span, "min_score": self.min_score,
                "span_penalty": self.span_penalty}

    def spans(self, transcript: str, index: VerseIndex) -> list[tuple[float, Match]]:
        """Scored candidate spans for a transcript, best first."""
        query = normalize(transcript)
        if not query:
            return []
        queries = [query]
        if query.startswith(index.basmala + " ") or query == index.basmala:
            queries.append(query[len(index.basmala):].strip())
        words = query.split()
        length = len(query)
        scored: dict[tuple[tuple[int, int], ...], tuple[float, Match]] = {}
        for surah, ayah in index.candidates(words, self.candidates):
            last_ayah = index.ayahs[surah]
            for first in range(max(1, ayah - 8), ayah + 1):
                for last in range(ayah, last_ayah + 1):
                    if self.max_span is not None and last - first + 1 > self.max_span:
                        break
                    texts = index.span_texts(surah, first, last)
                    shortest = min(len(t) for t, _ in texts)
                    if shortest > 1.6 * length + 20 and last > ayah:
                        break
                    # In Al-Fatiha the basmala is ayah 1: it is never stripped from the transcript there.
                    usable = queries[:1] if surah == 1 else queries
                    best = max(
                        ((fuzz.ratio(q, text), with_basmala) for text, with_basmala in texts for q in usable if q),
                        key=lambda item: item[0],
                    )
                    verses = tuple((surah, a) for a in range(first, last + 1))
                    score = best[0] - self.span_penalty * (len(verses) - 1)
                    if verses not in scored or score > scored[verses][0]:
                        scored[verses] = (score, Match(verses, best[0], best[1]))
        return sorted(scored.values(), key=lambda item: (-item[0], item[1].verses))

    def match(self, transcript: str, index: VerseIndex) -> Match:
        ranked = self.spans(transcript, index)
        if not ranked or ranked[0][1].score < self.min_score:
            return Match((), ranked[0][1].score if ranked else 0.0)
        return ranked[0][1]
