"""From transcript to verses: normalisation, the verse index, and the text matcher.

Normalisation follows the benchmark protocol: tashkeel, the superscript alef and the Quranic small
marks, tatweel, BOM and punctuation are stripped; alef variants (alef wasla included) become bare
alef; ta marbuta and alef maqsura are folded the same way on both sides.

The text matcher scores spans of consecutive verses of any length against the whole transcript.
Candidate verses come from an index of character n-grams (weighted by rarity) and, for short
transcripts, from the verses nearest the whole transcript, so that character errors cannot hide a
verse; each candidate grows into spans around it, and rapidfuzz's normalised edit similarity
(fuzz.ratio) ranks the spans. The basmala is handled both ways: ayah 1 of every surah but Al-Fatiha
and At-Tawba is matched with and without it, and when a transcript opens with something close to
the basmala, every span is also matched with the basmala before it. The best spans are also tried
one verse earlier with that verse's first word unheard.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from rapidfuzz import fuzz, process

from quranft import quran_text


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


GRAM = 3  # characters per n-gram of the candidate index
SLACK = 10  # characters beyond the 60% length window for spans, which length noise in a short transcript exceeds
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
        tables = {v: quran_text.verses(v) for v in variants}
        index.keys = sorted(tables[variants[0]])
        for surah, ayah in index.keys:
            index.texts[(surah, ayah)] = [normalize(tables[v][(surah, ayah)]) for v in variants]
            index.ayahs[surah] = max(index.ayahs.get(surah, 0), ayah)
        index._join_surahs()
        index._index_grams()
        index._group_identical()
        index.basmala = normalize(quran_text.basmala(variants[0]))
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


@dataclass(frozen=True)
class TextMatcher:
    """Span matcher over normalised text."""

    candidates: int = 12
    max_span: int | None = None  # None: spans of any length
    # Below these scores a transcript matches nothing. Chance decides the bar: against random letters,
    # the best of the 6,236 verses scores about 58 at 9 to 30 characters, but under 48 past 30 (where
    # a transcript with half its words wrong may score 56 and be right).
    min_score: float = 55.0
    short_min_score: float = 62.0  # for transcripts shorter than short_chars
    short_chars: int = 30
    span_penalty: float = 0.1  # points per extra verse, so that ties go to the shorter span
    nearest_max_chars: int = 40  # queries up to this long also take the verses nearest as a whole
    lost_word_spans: int = 3  # the best spans also tried one verse earlier with its first word lost
    name: str = "text"

    def settings(self) -> dict:
        return {"candidates": self.candidates, "max_span": self.max_span, "min_score": self.min_score,
                "short_min_score": self.short_min_score, "short_chars": self.short_chars,
                "span_penalty": self.span_penalty, "nearest_max_chars": self.nearest_max_chars,
                "lost_word_spans": self.lost_word_spans}

    def spans(self, transcript: str, index: VerseIndex) -> list[tuple[float, Match]]:
        """Scored candidate spans for a transcript, best first."""
        query = normalize(transcript)
        if not query:
            return []
        rest = index.after_basmala(query)
        said = rest is not None
        queries = [query, rest] if rest else [query]
        found = [key for q in queries for key in index.candidates(q, self.candidates)]
        found += [key for q in queries if len(q) <= self.nearest_max_chars for key in index.nearest(q, self.candidates)]
        # A basmala followed by a word is a basmala said before a verse, never Al-Fatiha's first verse alone.
        excluded = {((1, 1),)} if rest and len(rest.replace(" ", "")) >= 2 else set()
        spans = [verses for verses in self._around(found, len(query), said, index) if verses not in excluded]
        texts = [index.span_texts(v[0][0], v[0][1], v[-1][1], basmala_said=said) for v in spans]
        flat = [text for options in texts for text, _ in options]
        # One call scores every text: rapidfuzz's loop in C++ instead of one Python call per text.
        ratios = process.cdist([query], flat, scorer=fuzz.ratio, dtype=np.float64)[0].tolist() if flat else []
        scored, start = {}, 0
        for verses, options in zip(spans, texts):
            own = ratios[start:start + len(options)]
            start += len(options)
            best = max(range(len(options)), key=own.__getitem__)
            scored[verses] = self._entry(verses, own[best], options[best][1])
        best = sorted(scored.values(), key=lambda item: (-item[0], item[1].verses))[:self.lost_word_spans]
        for _, match in best:
            self._try_lost_first_word(query, match.verses, said, index, scored)
        return sorted(scored.values(), key=lambda item: (-item[0], item[1].verses))

    def _around(self, found: list[tuple[int, int]], length: int, said: bool,
                index: VerseIndex) -> list[tuple[tuple[int, int], ...]]:
        """The spans around each candidate verse (starting up to 8 verses before it) with a text
        within 60% (and SLACK characters) of the query's length, and each candidate verse alone."""
        longest, shortest = 1.6 * length + SLACK, (length - SLACK) / 1.6
        spans = {}
        for surah, ayah in dict.fromkeys(found):
            for first in range(ayah, max(0, ayah - 9), -1):
                if first < ayah and index.span_lengths(surah, first, ayah, said)[0] > longest:
                    break
                for last in range(ayah, index.ayahs[surah] + 1):
                    if self.max_span is not None and last - first + 1 > self.max_span:
                        break
                    low, high = index.span_lengths(surah, first, last, said)
                    alone = first == last
                    if low > longest and not alone:
                        break
                    if high >= shortest or alone:
                        spans.setdefault(tuple((surah, a) for a in range(first, last + 1)), None)
        return list(spans)

    def _entry(self, verses: tuple[tuple[int, int], ...], score: float, with_basmala: bool) -> tuple[float, Match]:
        return score - self.span_penalty * (len(verses) - 1), Match(verses, score, with_basmala)

    def _try_lost_first_word(self, query: str, verses: tuple[tuple[int, int], ...], said: bool, index: VerseIndex,
                             scored: dict) -> None:
        """Scores the span one verse longer at the front with that verse's first word unheard (as when
        a recording starts late), since the plain score of that span pays for the lost word in full."""
        surah, first = verses[0]
        if first == 1:
            return
        earlier = ((surah, first - 1), *verses)
        texts = []
        for text, with_basmala in index.span_texts(surah, first - 1, verses[-1][1], basmala_said=said):
            opening, body = (f"{index.basmala} ", text[len(index.basmala) + 1:]) if with_basmala else ("", text)
            if " " in body:
                texts.append((opening + body.split(" ", 1)[1], with_basmala))
        if texts:
            candidate = self._entry(earlier, *max(((fuzz.ratio(query, text), with_basmala)
                                                   for text, with_basmala in texts), key=lambda item: item[0]))
            if earlier not in scored or candidate[0] > scored[earlier][0]:
                scored[earlier] = candidate

    def match(self, transcript: str, index: VerseIndex) -> Match:
        ranked = self.spans(transcript, index)
        short = len(normalize(transcript)) < self.short_chars
        if not ranked or ranked[0][1].score < (self.short_min_score if short else self.min_score):
            return Match((), ranked[0][1].score if ranked else 0.0)
        return ranked[0][1]
