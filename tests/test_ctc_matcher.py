"""The CTC re-rank matcher against a perfect acoustic model: log-probabilities that spell the true tokens.

With such log-probabilities the only thing that can go wrong is the matcher's own bookkeeping: which
token sequences it builds for a span, and how it breaks ties between spans whose sequences coincide.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import DEMO
from quranft.matching.ctc_matcher import CTCMatcher
from quranft.matching.text_matcher import TextMatcher
from quranft.matching.verse_index import default_index
from quranft.quran import tanzil
from quranft.quran.arabic import normalize
from quranft.quran.tokenizer import SentencePieceTokenizer


@pytest.fixture(scope="module")
def matcher() -> CTCMatcher:
    tokenizer = SentencePieceTokenizer.from_nemo(DEMO / "base_model.nemo")
    return CTCMatcher(tokenizer, blank=tokenizer.vocab_size)


def perfect_log_probs(matcher: CTCMatcher, text: str) -> np.ndarray:
    """One confident frame per token of `text`, each followed by a blank frame (so repeats survive)."""
    tokens = matcher.encode(text)
    classes = matcher.tokenizer.vocab_size + 1
    frames = np.full((2 * len(tokens), classes), np.log(0.01 / classes), dtype=np.float32)
    for position, token in enumerate(tokens):
        frames[2 * position, token] = np.log(0.99)
        frames[2 * position + 1, matcher.blank] = np.log(0.99)
    return frames


def recited(surah: int, first: int, last: int, basmala: bool, variant: str) -> str:
    text = " ".join(tanzil.verse(surah, a, variant) for a in range(first, last + 1))
    return f"{tanzil.basmala(variant)} {text}" if basmala else text


def predict(matcher: CTCMatcher, surah: int, first: int, last: int, basmala: bool, variant: str = "simple"):
    text = recited(surah, first, last, basmala, variant)
    return matcher.match(normalize(text), perfect_log_probs(matcher, text), default_index(), TextMatcher()).verses


# Spans that start at a surah's first verse: Al-Fatiha (whose first verse is the basmala), At-Tawba
# (which has none), disconnected-letter openings, one-word openings and whole short surahs.
FROM_FIRST_VERSE = [(1, 1, 1), (1, 1, 2), (1, 1, 4), (1, 1, 7), (9, 1, 2), (2, 1, 3), (19, 1, 2), (36, 1, 3),
                    (55, 1, 4), (69, 1, 3), (112, 1, 4), (114, 1, 6)]


@pytest.mark.parametrize("surah, first, last", FROM_FIRST_VERSE)
@pytest.mark.parametrize("variant", ["simple", "uthmani"])
def test_a_span_from_the_first_verse_is_found_without_a_spoken_basmala(matcher, surah, first, last, variant):
    assert predict(matcher, surah, first, last, False, variant) == tuple((surah, a) for a in range(first, last + 1))


@pytest.mark.parametrize("surah, first, last", [case for case in FROM_FIRST_VERSE if case[0] not in (1, 9)])
def test_a_span_from_the_first_verse_is_found_after_a_spoken_basmala(matcher, surah, first, last):
    assert predict(matcher, surah, first, last, True) == tuple((surah, a) for a in range(first, last + 1))


@pytest.mark.parametrize("surah, first, last, basmala", [(1, 2, 4, False), (1, 2, 7, False), (2, 255, 255, True),
                                                         (2, 255, 257, False), (9, 5, 6, True)])
def test_spans_from_later_verses_are_found(matcher, surah, first, last, basmala):
    assert predict(matcher, surah, first, last, basmala) == tuple((surah, a) for a in range(first, last + 1))


def test_no_log_probabilities_match_nothing(matcher):
    assert matcher.match("الحمد لله", None, default_index(), TextMatcher()).verses == ()


def test_a_transcript_that_the_text_matcher_finds_no_verse_for_matches_nothing(matcher):
    """The log-probs are only re-ranked over the text matcher's candidates: none, no verse (what an
    untrained model's empty transcript gives)."""
    log_probs = perfect_log_probs(matcher, recited(112, 1, 1, False, "simple"))
    assert TextMatcher().spans("", default_index()) == []
    assert matcher.match("", log_probs, default_index(), TextMatcher()).verses == ()


@pytest.mark.parametrize("surah, noisy", [(20, "بسم الله الرحمن الرحين طاه"), (19, "بسن الله الرحمن الرحيم كهيعض")])
def test_a_noisy_transcript_of_a_first_verse_after_the_basmala_is_found(matcher, surah, noisy):
    log_probs = perfect_log_probs(matcher, recited(surah, 1, 1, True, "simple"))
    assert matcher.match(noisy, log_probs, default_index(), TextMatcher()).verses == ((surah, 1),)


def test_the_batched_losses_are_torchs_loss_of_each_target_alone(matcher):
    """One CTC-loss call over all of a clip's candidate targets gives, to the bit, what one call per
    target gives (the figures the matcher ranked by before it batched them); a target that is
    empty or longer than the clip scores inf."""
    import torch
    import torch.nn.functional as F

    log_probs = torch.from_numpy(perfect_log_probs(matcher, recited(112, 1, 2, True, "simple")))
    frames = log_probs.shape[0]
    targets = [*matcher.targets(((112, 1), (112, 2))), *matcher.targets(((112, 1),)), *matcher.targets(((113, 1),)),
               [], list(range(frames + 1))]
    alone = [float(F.ctc_loss(log_probs.unsqueeze(1), torch.tensor([t]), torch.tensor([frames]), torch.tensor([len(t)]),
                              blank=matcher.blank, reduction="sum")) if t and len(t) <= frames else float("inf")
             for t in targets]
    assert matcher.losses(log_probs, targets) == alone
    assert len({len(t) for t in targets[:-2]}) > 1 and min(alone[:-2]) < max(alone[:-2]) < float("inf")
    assert matcher.losses(log_probs, [[], list(range(frames + 1))]) == [float("inf")] * 2
