"""The verse segmenter: verses with their times from a recording's CTC log-probs alone.

The log-probs are what a perfect acoustic model would give: the demo model's tokenizer's ids of
each verse's text, a frame each with a blank frame after it, and blank frames in the pauses.
"""

from __future__ import annotations

import json
import subprocess
import sys
from functools import lru_cache

import numpy as np
import pytest

from conftest import REPO
from quranft.matching.alignment import align
from quranft.matching.ctc_matcher import load_log_probs, save_log_probs
from quranft.matching.segments import VerseSegmenter, VerseSpan, find_verses, spans_label
from quranft.quran import tanzil
from quranft.quran.tokenizer import SentencePieceTokenizer

FRAME = 0.08
PAUSE = 10  # blank frames between verses
UNLIKELY = -30.0  # the log-prob of every class but the one heard


@lru_cache(maxsize=None)
def tokenizer() -> SentencePieceTokenizer:
    return SentencePieceTokenizer.from_nemo(REPO / "demo" / "base_model.nemo")


@lru_cache(maxsize=None)
def segmenter() -> VerseSegmenter:
    return VerseSegmenter(tokenizer(), blank=tokenizer().vocab_size)


def ids(text: str) -> list[int]:
    return tokenizer().text_to_ids(text)


def verse_ids(surah: int, ayah: int) -> list[int]:
    return ids(tanzil.verse(surah, ayah, "simple"))


def spell(parts: list[list[int] | int]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Log-probs for token runs (a frame per token, a blank frame after each) and pauses (a count of
    blank frames); and each run's first frame and one past its last token's frame."""
    blank = tokenizer().vocab_size
    labels: list[int] = []
    runs = []
    for part in parts:
        if isinstance(part, int):
            labels += [blank] * part
            continue
        runs.append((len(labels), len(labels) + 2 * len(part) - 1))
        for token in part:
            labels += [token, blank]
    log_probs = np.full((len(labels), blank + 1), UNLIKELY, dtype=np.float32)
    log_probs[np.arange(len(labels)), labels] = 0.0
    return log_probs, runs


def recite(verses: list[tuple[int, int]]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    parts: list[list[int] | int] = [PAUSE]
    for verse in verses:
        parts += [verse_ids(*verse), PAUSE]
    return spell(parts)


def found(log_probs: np.ndarray) -> list[tuple[int, int]]:
    return [span.verse for span in segmenter().find(log_probs)]


def test_a_perfect_recitation_gives_every_verse_with_its_boundaries_within_a_frame():
    verses = [(103, 1), (103, 2), (103, 3), (104, 1), (2, 255), (2, 256)]
    log_probs, runs = recite(verses)
    spans = segmenter().find(log_probs)
    assert [span.verse for span in spans] == verses
    for span, (first, end) in zip(spans, runs):
        assert abs(span.start - first * FRAME) <= FRAME and abs(span.end - end * FRAME) <= FRAME
        assert 0.99 <= span.confidence <= 1.0


def test_a_verse_recited_twice_is_found_twice():
    assert found(recite([(112, 1), (112, 2), (112, 2), (112, 3)])[0]) == [(112, 1), (112, 2), (112, 2), (112, 3)]


def test_a_skipped_verse_is_not_found():
    assert found(recite([(112, 1), (112, 3), (112, 4)])[0]) == [(112, 1), (112, 3), (112, 4)]


def test_a_restart_in_the_middle_of_a_verse_gives_the_verse_once_from_its_first_start():
    words = tanzil.verse(2, 255, "simple").split()
    log_probs, runs = spell([PAUSE, verse_ids(2, 254), PAUSE, ids(" ".join(words[:20])), PAUSE,
                             ids(" ".join(words[14:])), PAUSE, verse_ids(2, 256), PAUSE])
    spans = segmenter().find(log_probs)
    assert [span.verse for span in spans] == [(2, 254), (2, 255), (2, 256)]
    assert abs(spans[1].start - runs[1][0] * FRAME) <= FRAME and abs(spans[1].end - runs[2][1] * FRAME) <= FRAME


def test_a_recitation_crossing_into_the_next_surah_skips_the_basmala_between():
    log_probs, runs = spell([PAUSE, verse_ids(113, 4), PAUSE, verse_ids(113, 5), PAUSE, ids(tanzil.basmala("simple")),
                             PAUSE, verse_ids(114, 1), PAUSE, verse_ids(114, 2), PAUSE])
    spans = segmenter().find(log_probs)
    assert [span.verse for span in spans] == [(113, 4), (113, 5), (114, 1), (114, 2)]
    assert spans[2].start >= runs[2][1] * FRAME, "the basmala is no part of 114:1"


def test_the_basmala_is_al_fatihas_first_verse():
    assert found(recite([(1, 1), (1, 2), (1, 3)])[0]) == [(1, 1), (1, 2), (1, 3)]


@pytest.mark.parametrize("kind", ["uniform", "random", "blank", "empty"])
def test_noise_and_silence_give_no_verse(kind):
    classes = tokenizer().vocab_size + 1
    if kind == "uniform":
        log_probs = np.full((400, classes), -np.log(classes), dtype=np.float32)
    elif kind == "random":
        logits = np.random.default_rng(0).normal(scale=3.0, size=(400, classes))
        log_probs = (logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))).astype(np.float32)
    elif kind == "blank":
        log_probs = spell([400])[0]
    else:
        log_probs = np.zeros((0, classes), dtype=np.float32)
    assert segmenter().find(log_probs) == []


def test_saved_log_probs_give_the_same_verses(tmp_path):
    log_probs, _ = recite([(103, 1), (103, 2), (103, 3)])
    save_log_probs(tmp_path / "log_probs.npz", {"recording": log_probs})
    saved = load_log_probs(tmp_path / "log_probs.npz")["recording"]
    spans = find_verses(saved, tokenizer())
    assert spans == segmenter().find(log_probs) and spans_label(spans) == "103:1-3"


def test_log_probs_without_the_blank_are_refused():
    with pytest.raises(ValueError, match="expected \\(frames, classes\\)"):
        segmenter().find(np.zeros((10, 5), dtype=np.float32))


def test_a_verse_placed_in_silence_or_in_another_verse_has_no_confidence():
    log_probs, runs = recite([(112, 1), (112, 2)])
    blank = tokenizer().vocab_size
    heard = align(log_probs, verse_ids(112, 2), blank)
    assert (heard.start, heard.end) == runs[1] and heard.confidence == pytest.approx(1.0)
    assert align(log_probs, verse_ids(112, 2), blank, 0, runs[0][1] + PAUSE // 2).confidence < 0.5
    assert align(log_probs, verse_ids(103, 1), blank).confidence < 0.5


def test_a_span_renders_as_people_write_verses():
    spans = [VerseSpan(103, a, a - 1.0, a - 0.5, 0.9) for a in (1, 2, 3)] + [VerseSpan(104, 1, 4.0, 5.0, 0.9)]
    assert spans[0].label == "103:1" and spans_label(spans) == "103:1-3, 104:1"
    assert spans[0].as_dict() == {"surah": 103, "ayah": 1, "start": 0.0, "end": 0.5, "confidence": 0.9,
                                  "label": "103:1"}


def test_finding_verses_imports_neither_torch_nor_nemo_nor_lightning():
    script = f"""
import json, sys
import numpy as np
sys.path.insert(0, {str(REPO / "src")!r})
from quranft.matching.segments import find_verses
from quranft.quran.tokenizer import SentencePieceTokenizer
tokenizer = SentencePieceTokenizer.from_nemo({str(REPO / "demo" / "base_model.nemo")!r})
labels = [tokenizer.vocab_size] * 5
for token in tokenizer.text_to_ids("قُلْ هُوَ اللَّهُ أَحَدٌ"):
    labels += [token, tokenizer.vocab_size]
log_probs = np.full((len(labels), tokenizer.vocab_size + 1), -30.0, dtype=np.float32)
log_probs[np.arange(len(labels)), labels] = 0.0
spans = find_verses(log_probs, tokenizer)
print(json.dumps({{"verses": [s.label for s in spans],
                  "loaded": [m for m in ("torch", "nemo", "lightning", "pytorch_lightning") if m in sys.modules]}}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    assert json.loads(result.stdout.splitlines()[-1]) == {"verses": ["112:1"], "loaded": []}


def test_identical_verses_are_told_apart_by_their_neighbours():
    assert found(recite([(55, 12), (55, 13), (55, 14), (55, 15), (55, 16)])[0]) == [
        (55, 12), (55, 13), (55, 14), (55, 15), (55, 16)]


def test_a_recitation_the_model_partly_misheard_is_found_with_less_confidence():
    """A model that gives 0.8 to what it hears, and hears every tenth token wrong."""
    verses = [(2, a) for a in range(2, 8)]
    log_probs, _ = recite(verses)
    heard = log_probs.argmax(axis=1)
    tokens = np.flatnonzero(heard != tokenizer().vocab_size)
    heard[tokens[::10]] = (heard[tokens[::10]] + 7) % tokenizer().vocab_size
    soft = np.full_like(log_probs, np.log(0.2 / (log_probs.shape[1] - 1)))
    soft[np.arange(len(heard)), heard] = np.log(0.8)
    spans = segmenter().find(soft)
    assert [span.verse for span in spans] == verses
    assert all(0.7 < span.confidence < 0.99 for span in spans)


def test_the_verse_after_the_last_one_heard_is_placed_even_where_the_text_matcher_names_nothing(monkeypatch):
    """A stream tells the segmenter the last verse it emitted (`after`): the next verse is placed
    by its tokens' fit wherever the text matcher proposes it or not (a garbled transcript names
    nothing), held to the same confidence; without `after`, nothing is found."""
    log_probs, runs = recite([(109, 3)])
    seg = segmenter()
    monkeypatch.setattr(seg, "candidate_verses", lambda text: [])  # a transcript the matcher cannot name
    assert seg.find(log_probs) == []
    [span] = seg.find(log_probs, after=(109, 2))
    assert (span.verse, round(span.start / 0.08), round(span.end / 0.08)) == ((109, 3), *runs[0])
    # the next verse of the surah, of the next surah after a surah's last, Al-Fatiha's 2 after the basmala
    assert [seg.next_verses(v) for v in ((109, 2), (109, 6), (1, 1), (114, 6))] == [[(109, 3)], [(110, 1)],
                                                                                  [(1, 2)], []]
