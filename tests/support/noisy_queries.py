"""Noisy transcripts with known verses: a deterministic query set for testing and timing the matcher.

Each query is the normalised text of one to six consecutive verses from the Tanzil text, with a
share of its characters (5-20% by default) substituted, deleted or inserted at random, like an
imperfect ASR transcript. The recipes cover what trips a text matcher: single verses, short verses
(one or two words, such as the disconnected-letter openings), a surah's first verse with the basmala
said or skipped, a first word lost, and spans of two to six verses. Every query carries the kinds
it belongs to (a short first verse said after the basmala is "single", "short" and "basmala_said"),
so accuracy can be told per kind. The same seed gives the same queries.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from quranft.matching.verse_index import VerseIndex
from quranft.quran import tanzil
from quranft.quran.arabic import normalize

KINDS = ("single", "short", "basmala_said", "basmala_skipped", "lost_first_word", "span")
SHORT_WORDS = 2  # a "short" verse has at most this many words
LETTERS = "ابتثجحخدذرزسشصضطظعغفقكلمنهوي"
# One-word openings that the issue names; always in the set so that they are never left to chance.
NAMED_SHORT = ((19, 1), (20, 1), (26, 1), (7, 1), (69, 1), (78, 1))
AYAHS = Counter(surah for surah, _ in tanzil.verses())  # surah -> its number of verses


@dataclass(frozen=True)
class Query:
    text: str
    expected: tuple[tuple[int, int], ...]
    kinds: tuple[str, ...]
    error_rate: float


def corrupt(text: str, rate: float, rng: random.Random) -> str:
    """Each character deleted, substituted, or followed by an inserted letter, each with `rate`/3."""
    out = []
    for char in text:
        roll = rng.random()
        if roll < rate / 3:
            continue
        out.append(rng.choice(LETTERS) if roll < 2 * rate / 3 else char)
        if rng.random() < rate / 3:
            out.append(rng.choice(LETTERS))
    return "".join(out)


def _pick_span(recipe: str, rng: random.Random, short: list[tuple[int, int]]) -> tuple[int, int, int, bool]:
    """(surah, first, last, basmala said) for one recipe."""
    if recipe == "short":
        surah, ayah = rng.choice(short)
        return surah, ayah, ayah, ayah == 1 and surah not in (1, 9) and rng.random() < 0.5
    if recipe in ("basmala_said", "basmala_skipped"):
        surah = rng.choice([s for s in range(2, 115) if s != 9])
        length = rng.randint(1, min(6, AYAHS[surah]))
        return surah, 1, length, recipe == "basmala_said"
    surah = rng.randint(1, 114)
    count = AYAHS[surah]
    length = 1 if recipe == "single" else rng.randint(2 if recipe == "span" else 1, min(6, count))
    first = rng.randint(1, count - length + 1)
    return surah, first, first + length - 1, first == 1 and surah not in (1, 9) and rng.random() < 0.5


def _kinds(words: list[str], surah: int, first: int, last: int, basmala: bool, lost: bool) -> tuple[str, ...]:
    kinds = ["single" if first == last else "span"]
    if first == last and len(words) <= SHORT_WORDS:
        kinds.append("short")
    if first == 1 and surah not in (1, 9):
        kinds.append("basmala_said" if basmala else "basmala_skipped")
    if lost:
        kinds.append("lost_first_word")
    return tuple(kinds)


def make_queries(count: int, seed: int = 0, min_rate: float = 0.05, max_rate: float = 0.20,
                 variants: tuple[str, ...] = ("simple", "uthmani")) -> list[Query]:
    """`count` noisy queries, the recipes taken in turn, the named short openings first."""
    rng = random.Random(seed)
    short = sorted(key for key, text in tanzil.verses("simple").items()
                   if len(normalize(text).split()) <= SHORT_WORDS)
    queries = []
    for number in range(count):
        recipe = KINDS[number % len(KINDS)]  # one recipe per kind; a query may end up of other kinds too
        if recipe == "short" and number // len(KINDS) < len(NAMED_SHORT):
            surah, first = NAMED_SHORT[number // len(KINDS)]
            last, basmala = first, rng.random() < 0.5
        else:
            surah, first, last, basmala = _pick_span(recipe, rng, short)
        variant = rng.choice(variants)
        words = normalize(" ".join(tanzil.verse(surah, a, variant) for a in range(first, last + 1))).split()
        # A first verse of one word lost whole leaves nothing of it to find: the verse keeps a word.
        lost = recipe == "lost_first_word" and len(normalize(tanzil.verse(surah, first, variant)).split()) >= 2
        spoken = words[1:] if lost else words
        if basmala:
            spoken = normalize(tanzil.basmala(variant)).split() + spoken
        rate = rng.uniform(min_rate, max_rate)
        queries.append(Query(corrupt(" ".join(spoken), rate, rng), tuple((surah, a) for a in range(first, last + 1)),
                             _kinds(words, surah, first, last, basmala, lost), rate))
    return queries


def is_right(predicted: tuple[tuple[int, int], ...], expected: tuple[tuple[int, int], ...], index: VerseIndex) -> bool:
    """The expected verses, or verses of identical normalised text in their place."""
    return len(predicted) == len(expected) and all(
        p == e or p in index.groups.get(e, ()) for p, e in zip(predicted, expected))


def accuracy_by_kind(queries: list[Query], predictions: list[tuple[tuple[int, int], ...]],
                     index: VerseIndex) -> dict[str, dict]:
    """Queries, wrong predictions and accuracy, overall ("all") and per kind."""
    table = {kind: {"queries": 0, "wrong": 0} for kind in ("all", *KINDS)}
    for query, predicted in zip(queries, predictions, strict=True):
        wrong = not is_right(predicted, query.expected, index)
        for kind in ("all", *query.kinds):
            table[kind]["queries"] += 1
            table[kind]["wrong"] += wrong
    for row in table.values():
        row["accuracy"] = round(1 - row["wrong"] / row["queries"], 4) if row["queries"] else None
    return table
