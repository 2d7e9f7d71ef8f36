"""The text matcher: spans of consecutive verses scored against the whole transcript.

Candidate verses come from the verse index (quranft.matching.verse_index): its character n-grams
(weighted by rarity) and, for short transcripts, the verses nearest the whole transcript, so that
character errors cannot hide a verse; each candidate grows into spans around it, and rapidfuzz's
normalised edit similarity (fuzz.ratio) ranks the spans. The basmala is handled both ways: ayah 1
of every surah but Al-Fatiha and At-Tawba is matched with and without it, and when a transcript
opens with something close to the basmala, every span is also matched with the basmala before it.
The best spans are also tried one verse earlier with that verse's first word unheard. Transcripts
and verses are compared after the protocol's normalisation (quranft.quran.arabic.normalize).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rapidfuzz import fuzz, process

from quranft.matching.verse_index import VerseIndex
from quranft.quran.arabic import normalize


@dataclass(frozen=True)
class Match:
    verses: tuple[tuple[int, int], ...]  # in recitation order; empty when nothing matched
    score: float  # 0..100
    with_basmala: bool = False


SLACK = 10  # characters beyond the 60% length window for spans, which length noise in a short transcript exceeds


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
