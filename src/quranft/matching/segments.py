"""The verses of a whole recording, in order, each with its start, end and confidence.

From a recording's CTC log-probabilities alone (saved ones too: no model runs), in three steps:

1. Candidates. The greedy transcript is cut into windows of words (overlapping, each with the
   frames its words span). A window's candidate verses are those of the text matcher's best spans
   for its text and those under its text where it fits best inside a surah (a window inside a
   long verse), with every verse of identical text (which only their neighbours tell apart) and,
   where the window holds something like it, the basmala (verse 1:1).
2. Placing. Each candidate's token sequences (per text variant: as the tokenizer writes it, and as
   the CTC matcher does) are placed by CTC segmentation (quranft.matching.alignment) in the frames
   around its window, and must overlap the window; the frames on each side of a placing are
   searched again, so that a verse recited twice is placed twice.
3. Choosing. Over the placed candidates at or above `min_confidence`, dynamic programming picks the
   non-overlapping sequence with the most evidence, plus `order_bonus` for each verse that follows
   the one before it in the mushaf (so identical verses go where their neighbours are). A basmala
   is reported as verse 1:1 only before 1:2 or at the end; before any other verse it is the basmala
   said before a surah (or a recitation), not a verse.

Imports numpy, rapidfuzz and ctc-segmentation only: never torch, Lightning or NeMo.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from rapidfuzz import fuzz, process

from quranft.matching.alignment import Alignment, align
from quranft.matching.ctc_matcher import CTCMatcher
from quranft.matching.text_matcher import TextMatcher
from quranft.matching.verse_index import BASMALA_MIN_SCORE, VerseIndex, default_index
from quranft.quran import tanzil
from quranft.quran.arabic import normalize
from quranft.quran.references import verses_label
from quranft.quran.tokenizer import greedy_tokens

Verse = tuple[int, int]
BASMALA: Verse = (1, 1)  # the basmala is Al-Fatiha's first verse
WORD_START = "\u2581"  # SentencePiece's mark of a piece that opens a word
# Frames searched around a window for a verse: its tokens at the window's pace, times this, plus
# MARGIN_FRAMES, on each side (reciters slow down and pause inside long verses).
REACH = 1.5
MARGIN_FRAMES = 12
# Below this a placed verse is not reported (a confidence of 0.5 is a span that explains as much
# as it contradicts: the evidence's zero). On synthetic log-probs (the demo tokenizer's tokens): a
# verse recited scores 0.8 to 1 with a tenth of its tokens wrong, 0.5 to 0.85 with a fifth wrong;
# another verse forced onto it 0 to 0.2; peaky random log-probs reach 0.5 with a short verse. To be
# tuned on validation recordings.
MIN_CONFIDENCE = 0.6


@dataclass(frozen=True)
class VerseSpan:
    """One verse found in a recording."""

    surah: int
    ayah: int
    start: float  # seconds from the start of the recording
    end: float
    confidence: float  # 0..1 (quranft.matching.alignment)

    @property
    def verse(self) -> Verse:
        return self.surah, self.ayah

    @property
    def label(self) -> str:
        """The verse as people write it: "103:1"."""
        return verses_label([self.verse])

    def as_dict(self) -> dict:
        return asdict(self) | {"label": self.label}


def spans_label(spans: Sequence[VerseSpan]) -> str:
    """The verses of the spans as people write them: "103:1-3, 104:1"; "none" when empty."""
    return verses_label([span.verse for span in spans])


@dataclass(frozen=True)
class Window:
    ids: list[int]  # the greedy tokens of its words
    first: int  # the frame of its first token
    last: int  # one past the frame where its last token starts


@dataclass(frozen=True)
class Candidate:
    verse: Verse
    placed: Alignment


def greedy_words(log_probs: np.ndarray, blank: int, tokenizer) -> list[tuple[list[int], list[int]]]:
    """The greedy transcript's words, each as its token ids and the frame where each token starts."""
    words: list[tuple[list[int], list[int]]] = []
    tokens = greedy_tokens(log_probs, blank)
    pieces = tokenizer.ids_to_tokens([token for token, _ in tokens]) if tokens else []
    for (token, frame), piece in zip(tokens, pieces):
        if piece.startswith(WORD_START) or not words:
            words.append(([], []))
        words[-1][0].append(token)
        words[-1][1].append(frame)
    return words


def windows(words: list[tuple[list[int], list[int]]], size: int, step: int) -> list[Window]:
    """Windows of `size` words (of `greedy_words`) every `step` words, the last one ending with the
    last word."""
    if not words:
        return []
    starts = list(range(0, max(len(words) - size, 0) + 1, step))
    if starts[-1] + size < len(words):
        starts.append(len(words) - size)
    out = []
    for start in starts:
        chosen = words[start:start + size]
        out.append(Window([token for ids, _ in chosen for token in ids], chosen[0][1][0], chosen[-1][1][-1] + 1))
    return out


def follows(before: Verse, after: Verse, index: VerseIndex) -> bool:
    """Whether `after` comes right after `before` in a recitation of the mushaf, the basmala
    between two surahs counted."""
    (surah, ayah), (next_surah, next_ayah) = before, after
    if before == BASMALA:
        return after == (1, 2) or next_ayah == 1 and next_surah not in (1, 9)
    last = ayah == index.ayahs[surah]
    return after == (surah, ayah + 1) or last and (after == (surah + 1, 1) or after == BASMALA)


def choose(candidates: list[Candidate], order_bonus: float, index: VerseIndex,
           after: Verse | None = None) -> list[Candidate]:
    """The non-overlapping sequence with the most evidence, `order_bonus` added for each verse that
    follows the one before it, the first one too when it follows `after` (dynamic programming over
    the candidates by end frame)."""
    ordered = sorted(candidates, key=lambda c: (c.placed.end, c.placed.start, c.verse))
    best: list[float] = []
    previous: list[int | None] = []
    for i, candidate in enumerate(ordered):
        opening = order_bonus if after is not None and follows(after, candidate.verse, index) else 0.0
        score, back = candidate.placed.evidence + opening, None
        for j in range(i):
            if ordered[j].placed.end <= candidate.placed.start:
                bonus = order_bonus if follows(ordered[j].verse, candidate.verse, index) else 0.0
                if best[j] + bonus + candidate.placed.evidence > score:
                    score, back = best[j] + bonus + candidate.placed.evidence, j
        best.append(score)
        previous.append(back)
    chosen: list[Candidate] = []
    at = int(np.argmax(best)) if best and max(best) > 0 else None
    while at is not None:
        chosen.append(ordered[at])
        at = previous[at]
    return chosen[::-1]


def without_basmalas(chosen: list[Candidate]) -> list[Candidate]:
    """The basmala kept as verse 1:1 only before 1:2 or at the end; before another verse it was
    said before a surah (or before starting mid-surah), and is no verse."""
    return [c for i, c in enumerate(chosen)
            if c.verse != BASMALA or i + 1 == len(chosen) or chosen[i + 1].verse == (1, 2)]


def _overlaps(placed: Alignment, window: Window) -> bool:
    return placed.start < window.last and window.first < placed.end


@dataclass
class VerseSegmenter:
    """Finds the verses of a recording from its CTC log-probs; see the module's docstring."""

    tokenizer: object  # text_to_ids, ids_to_tokens, ids_to_text, unk_id (NeMo's or SentencePieceTokenizer)
    blank: int  # the blank index of the log-probs (NeMo: the last one)
    frame_seconds: float = 0.08  # NeMo's FastConformer: 10 ms features, subsampled 8 times
    min_confidence: float = MIN_CONFIDENCE
    window_words: int = 12  # about a verse (the Quran averages 12.4 words a verse)
    window_step: int = 6
    spans_per_window: int = 5  # the text matcher's best spans whose verses are candidates
    locations: int = 3  # the surahs where a window's text fits best, whose verses under it are candidates
    order_bonus: float = 1.0  # evidence for a verse that follows the one before it
    variants: tuple[str, ...] = ("simple", "uthmani")
    index: VerseIndex = field(default_factory=default_index)
    text_matcher: TextMatcher = field(default_factory=TextMatcher)

    def __post_init__(self):
        self._encoder = CTCMatcher(self.tokenizer, self.blank, variants=self.variants)
        self._tokens: dict[Verse, list[list[int]]] = {}
        self._searched: dict[tuple, list[Alignment]] = {}  # one recording's searches

    def settings(self) -> dict:
        return {"frame_seconds": self.frame_seconds, "min_confidence": self.min_confidence,
                "window_words": self.window_words, "window_step": self.window_step,
                "spans_per_window": self.spans_per_window, "locations": self.locations,
                "order_bonus": self.order_bonus, "variants": list(self.variants)}

    def tokens(self, verse: Verse) -> list[list[int]]:
        """The verse's distinct token sequences (1:1 is the basmala): per text variant, as the
        tokenizer writes it (a model trained on the text as it is) and as the CTC matcher does (the
        characters the tokenizer lacks mapped, letters and marks in Unicode's order)."""
        if verse not in self._tokens:
            texts = [tanzil.verse(*verse, variant=variant) for variant in self.variants]
            plain = [self.tokenizer.text_to_ids(text) for text in texts]
            sequences = [t for t in plain if self.tokenizer.unk_id not in t] + [self._encoder.encode(t) for t in texts]
            self._tokens[verse] = [list(t) for t in dict.fromkeys(tuple(t) for t in sequences if t)]
        return self._tokens[verse]

    def candidate_verses(self, text: str) -> list[Verse]:
        """The verses of the text matcher's best spans for a window's text and those under it where
        it fits best (`located_verses`), with every verse of identical text, and the basmala where
        the text holds something like it."""
        spans = [match for _, match in self.text_matcher.spans(text, self.index)[:self.spans_per_window]]
        verses = {member: None for match in spans for verse in match.verses
                  for member in self.index.groups.get(verse, (verse,))}
        query = normalize(text)
        for verse in self.located_verses(query):
            verses.update(dict.fromkeys(self.index.groups.get(verse, (verse,))))
        said = fuzz.partial_ratio(self.index.basmala, query) >= BASMALA_MIN_SCORE
        if said or any(match.with_basmala for match in spans):
            verses[BASMALA] = None
        return list(verses)

    def located_verses(self, query: str) -> list[Verse]:
        """The verses under the query where it fits best inside each of the `locations` surahs it
        fits best (rapidfuzz's partial ratio against each surah's text): the text matcher ranks
        spans by their whole text, so that a window inside a long verse ranks that verse low."""
        if not query:
            return []
        surahs = sorted(self.index.surah_texts)
        texts = [self.index.surah_texts[surah][0] for surah in surahs]
        scores = process.cdist([query], texts, scorer=fuzz.partial_ratio)[0]
        verses = []
        for position in np.argsort(-scores, kind="stable")[:self.locations]:
            surah = surahs[position]
            where = fuzz.partial_ratio_alignment(query, texts[position])
            ends = self.index.offsets[surah][0]
            first, last = (bisect.bisect_right(ends, at) for at in (where.dest_start, where.dest_end - 1))
            verses += [(surah, ayah) for ayah in range(first, min(last, self.index.ayahs[surah]) + 1)]
        return verses

    def place(self, log_probs: np.ndarray, verse: Verse, window: Window) -> list[Alignment]:
        """Every placing of the verse (any of its token sequences) near the window that overlaps it,
        at or above `min_confidence`."""
        pace = max(1.0, (window.last - window.first) / max(1, len(window.ids)))  # frames per token
        placings = []
        for tokens in self.tokens(verse):
            reach = int(REACH * len(tokens) * pace) + MARGIN_FRAMES
            first, last = max(0, window.first - reach), min(len(log_probs), window.last + reach)
            placings += self._search(log_probs, tuple(tokens), window, first, last)
        return placings

    def _search(self, log_probs: np.ndarray, tokens: tuple[int, ...], window: Window, first: int,
                last: int) -> list[Alignment]:
        """The placings of the tokens in frames [first, last) that overlap the window: the best one,
        then those on each side of it (a verse recited twice); the best one outside the window
        sends the search to the window's side of it."""
        if not (first < window.last and window.first < last):
            return []
        key = (tokens, window.first, window.last, first, last)
        if key not in self._searched:
            placed = align(log_probs, list(tokens), self.blank, first, last)
            if placed is None:
                found = []
            elif not _overlaps(placed, window):
                side = (placed.end, last) if placed.end <= window.first else (first, placed.start)
                found = self._search(log_probs, tokens, window, *side)
            elif placed.confidence < self.min_confidence:
                found = []
            else:
                found = [*self._search(log_probs, tokens, window, first, placed.start), placed,
                         *self._search(log_probs, tokens, window, placed.end, last)]
            self._searched[key] = found
        return self._searched[key]

    def next_verses(self, verse: Verse) -> list[Verse]:
        """The verse a recitation goes on with after `verse`: the next of its surah, or the next
        surah's first (follows)."""
        surah, ayah = verse
        if verse == BASMALA:
            return [(1, 2)]
        if ayah < self.index.ayahs[surah]:
            return [(surah, ayah + 1)]
        return [(surah + 1, 1)] if surah + 1 in self.index.ayahs else []

    def candidates(self, log_probs: np.ndarray, expected: Sequence[Verse] = ()) -> list[Candidate]:
        """Every candidate verse placed near each window where the text matcher proposes it, and the
        `expected` verses near every window; a verse is searched for only over the frames of a
        window that no earlier window searched it over."""
        found: list[Candidate] = []
        searched_until: dict[Verse, int] = {}
        self._searched = {}
        words = greedy_words(log_probs, self.blank, self.tokenizer)
        for window in windows(words, self.window_words, self.window_step):
            proposed = self.candidate_verses(self.tokenizer.ids_to_text(window.ids))
            for verse in [*proposed, *(v for v in expected if v not in proposed)]:
                unsearched = Window(window.ids, max(window.first, searched_until.get(verse, 0)), window.last)
                if unsearched.first < unsearched.last:
                    found += [Candidate(verse, placed) for placed in self.place(log_probs, verse, unsearched)]
                    searched_until[verse] = window.last
        return list(dict.fromkeys(found))

    def find(self, log_probs: np.ndarray, after: Verse | None = None) -> list[VerseSpan]:
        """The verses recited, in order, each with its start, end (seconds) and confidence. `after`:
        the verse recited just before these log-probs (a stream's last verse emitted): the verse
        that follows it is placed too, wherever the text matcher proposes it or not (a verse its
        own garbled transcript does not name is still found by its tokens' fit, held to the same
        `min_confidence`), and gets `order_bonus` when chosen first."""
        log_probs = np.asarray(log_probs, dtype=np.float32)
        if log_probs.ndim != 2 or log_probs.shape[1] <= self.blank:
            raise ValueError(f"log-probs of shape {log_probs.shape}: expected (frames, classes) with the blank, "
                             f"{self.blank}, among the classes")
        expected = self.next_verses(after) if after is not None else []
        chosen = without_basmalas(choose(self.candidates(log_probs, expected), self.order_bonus, self.index,
                                         after))
        return [VerseSpan(*c.verse, round(c.placed.start * self.frame_seconds, 6),
                          round(c.placed.end * self.frame_seconds, 6), round(c.placed.confidence, 6))
                for c in chosen]


def find_verses(log_probs: np.ndarray, tokenizer, blank: int | None = None, frame_seconds: float = 0.08,
                min_confidence: float = MIN_CONFIDENCE) -> list[VerseSpan]:
    """The verses recited in a recording, from its CTC log-probs (frames, classes; log-softmax) and
    the tokenizer of the model that produced them; `blank` defaults to the last class. For many
    recordings, one VerseSegmenter keeps the verses' token sequences between them."""
    blank = log_probs.shape[1] - 1 if blank is None else blank
    segmenter = VerseSegmenter(tokenizer, blank, frame_seconds=frame_seconds, min_confidence=min_confidence)
    return segmenter.find(log_probs)
