"""The text matcher against the full Quran text: every verse, spans, the basmala, normalisation."""

from __future__ import annotations

import random

import pytest

from quranft.matching.text_matcher import TextMatcher
from quranft.matching.verse_index import default_index
from quranft.quran import tanzil
from quranft.quran.arabic import normalize


@pytest.fixture(scope="module")
def index():
    return default_index()


def correct(match, expected, index):
    if match.verses == tuple(expected):
        return True
    # a verse whose text is identical to others: any member of its group is right
    return len(expected) == 1 and len(match.verses) == 1 and match.verses[0] in index.groups.get(expected[0], ())


def test_the_index_holds_every_verse_and_the_identical_text_groups(index):
    assert len(index.keys) == 6236
    groups = index.identical_groups()
    assert 90 <= len(groups) <= 100  # the protocol counts 95 groups of 273 verses
    assert any((55, 13) in group for group in groups)  # "فبأي آلاء ربكما تكذبان", 31 times in Ar-Rahman
    assert len(next(g for g in groups if (55, 13) in g)) == 31


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["simple", "uthmani"])
def test_every_verse_matches_itself_or_its_identical_text_group(index, variant):
    matcher = TextMatcher()
    wrong = [key for key in index.keys
             if not correct(matcher.match(tanzil.verse(*key, variant=variant), index), [key], index)]
    assert wrong == []


@pytest.mark.parametrize("length", [1, 2, 3, 4, 5, 6])
def test_spans_of_one_to_six_verses_with_and_without_the_basmala(index, length):
    matcher = TextMatcher()
    rng = random.Random(length)
    checked = 0
    while checked < 25:
        surah = rng.randint(2, 114)
        count = index.ayahs[surah]
        if count < length or surah == 9:
            continue
        first = rng.choice([1, rng.randint(1, count - length + 1)])
        expected = [(surah, a) for a in range(first, first + length)]
        for basmala in (False, True):
            text = " ".join(tanzil.verse(surah, a, "simple", with_basmala=basmala and a == 1)
                            for a in range(first, first + length))
            if basmala and first != 1:
                text = f"{tanzil.basmala('simple')} {text}"  # said before starting mid-surah
            assert correct(matcher.match(text, index), expected, index), (expected, basmala)
        checked += 1


def test_al_fatiha_keeps_its_first_verse(index):
    text = " ".join(tanzil.verse(1, a, "simple") for a in range(1, 8))
    assert TextMatcher().match(text, index).verses == tuple((1, a) for a in range(1, 8))


def test_spans_longer_than_four_verses_are_found(index):
    text = " ".join(tanzil.verse(2, a, "simple") for a in range(1, 11))
    assert TextMatcher().match(text, index).verses == tuple((2, a) for a in range(1, 11))


def test_noisy_transcripts_still_match(index):
    text = normalize(tanzil.verse(112, 2, "simple") + " " + tanzil.verse(112, 3, "simple"))
    noisy = text.replace("ل", "ن", 1).replace("د", "", 1)
    assert TextMatcher().match(noisy, index).verses == ((112, 2), (112, 3))


def test_nothing_recognisable_matches_nothing(index):
    assert TextMatcher().match("", index).verses == ()
    assert TextMatcher().match("hello world", index).verses == ()


def test_normalisation_follows_the_protocol():
    uthmani = tanzil.verse(1, 4, "uthmani")
    simple = tanzil.verse(1, 4, "simple")
    assert normalize(simple) == "مالك يوم الدين"
    assert normalize(uthmani) == "ملك يوم الدين"  # the dagger alef goes: why both variants are indexed
    assert normalize("ٱلْحَمْدُ لِلَّهِ") == "الحمد لله"
    assert normalize("\ufeffإِنَّ، أَنَّ. آمَنَ") == "ان ان امن"
    assert normalize("رَحْمَةً هُدَى") == normalize("رحمه هدي")  # ta marbuta and alef maqsura fold
    assert normalize("ٱلرَّحْمَـٰنِ") == "الرحمن"  # tatweel and superscript alef stripped
