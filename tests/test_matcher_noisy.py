"""The text matcher on noisy transcripts: character errors in short and first verses, a noisy basmala,
and a seeded query set of every kind with the error bounds the matcher must keep."""

from __future__ import annotations

import pytest

from quranft.matching.text_matcher import TextMatcher
from quranft.matching.verse_index import default_index
from support.noisy_queries import KINDS, accuracy_by_kind, make_queries

NOISY_BASMALA = "بسم الله الرحمن الرحين"  # last letter wrong


@pytest.fixture(scope="module")
def index():
    return default_index()


# One-word (and one two-word) first verses, each with one character error.
ONE_ERROR = [("كهيعض", (19, 1)), ("طاه", (20, 1)), ("طسن", (26, 1)), ("الممص", (7, 1)), ("الحاقع", (69, 1)),
             ("عم يتشالون", (78, 1))]


@pytest.mark.parametrize("text, verse", ONE_ERROR)
@pytest.mark.parametrize("basmala", ["", NOISY_BASMALA + " ", "بسم الله الرحمن الرحيم "])
def test_a_short_first_verse_with_a_character_error_is_found(index, text, verse, basmala):
    match = TextMatcher().match(basmala + text, index)
    assert len(match.verses) == 1
    assert match.verses[0] == verse or match.verses[0] in index.groups.get(verse, ())
    assert match.with_basmala == bool(basmala)


def test_a_spoken_basmala_never_pulls_the_prediction_to_al_fatiha(index):
    matcher = TextMatcher()
    assert matcher.match(f"{NOISY_BASMALA} الرحمن", index).verses == ((55, 1),)  # the basmala's own word
    assert matcher.match(f"{NOISY_BASMALA} والعسر", index).verses == ((103, 1),)
    assert matcher.match(f"{NOISY_BASMALA} الحمد لله رب العلمين", index).verses == ((1, 1), (1, 2))


def test_the_basmala_alone_is_al_fatihas_first_verse(index):
    assert TextMatcher().match(NOISY_BASMALA, index).verses == ((1, 1),)
    assert TextMatcher().match("بسن الله الرحمن الرحيم", index).verses == ((1, 1),)


def test_the_query_set_is_seeded_and_covers_every_kind():
    queries = make_queries(120, seed=3)
    assert queries == make_queries(120, seed=3) and queries != make_queries(120, seed=4)
    assert {kind for query in queries for kind in query.kinds} == set(KINDS)
    assert all(0.05 <= query.error_rate <= 0.20 for query in queries)


def test_noisy_transcripts_of_every_kind_stay_within_the_error_bounds(index):
    """At most 1.5% wrong overall and 5% in any kind, a verse of identical text counting as right."""
    queries = make_queries(600, seed=0)
    matcher = TextMatcher()
    table = accuracy_by_kind(queries, [matcher.match(q.text, index).verses for q in queries], index)
    assert all(table[kind]["queries"] >= 80 for kind in KINDS), table
    assert table["all"]["wrong"] <= 0.015 * table["all"]["queries"], table
    assert all(row["wrong"] <= 0.05 * row["queries"] for row in table.values()), table
