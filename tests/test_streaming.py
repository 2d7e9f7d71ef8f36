"""Continuous recitation with a perfect acoustic model: a recording whose every frame's best class
is known (the tokens of a sequence of verses, blanks in the pauses), heard whole and streamed in
0.5 s chunks as the app hears a microphone. Every verse is found, each boundary within one frame,
nothing in the pauses, and the stream never takes a verse back."""

from __future__ import annotations

import numpy as np
import pytest

from quranft.data.vad import FRAME
from quranft.evaluation.longform_scoring import Timed, score_session, summarize
from quranft.matching.segments import VerseSegmenter
from quranft.models.loading import InferenceModel, speech_log_probs
from quranft.models.streaming import VerseStream, stream_recording
from quranft.quran import tanzil
from test_segments import UNLIKELY, tokenizer

RATE, HOP = 16000, 1280  # a frame of the model: 80 ms
VERSES = [(112, 1), (112, 2), (112, 3), (112, 4), (113, 1), (113, 2), (113, 3), (113, 4), (113, 5)]


class Heard:
    """A perfect acoustic model: each frame's amplitude says which class it hears ((class + 1) /
    1000; 0 is the blank of a pause)."""

    def __init__(self):
        self.blank = tokenizer().vocab_size

    def transcribe(self, audio: np.ndarray, windowing=None) -> tuple[str, np.ndarray]:
        frames = -(-len(audio) // HOP)
        centres = np.minimum(np.arange(frames) * HOP + HOP // 2, len(audio) - 1)
        labels = np.rint(np.abs(audio[centres]) * 1000).astype(int) - 1
        labels[labels < 0] = self.blank
        log_probs = np.full((frames, self.blank + 1), UNLIKELY, np.float32)
        log_probs[np.arange(frames), labels] = 0.0
        return "", log_probs


class Loud:
    """A voice-activity detector that hears speech wherever the audio is not silent."""
    threshold, min_speech, min_silence, pad = 0.5, 0.25, 0.1, 0.03

    def probabilities(self, audio: np.ndarray, state=None) -> np.ndarray:
        frames = -(-len(audio) // FRAME)
        padded = np.zeros(frames * FRAME, np.float32)
        padded[:len(audio)] = audio
        return (np.abs(padded.reshape(frames, FRAME)).max(axis=1) > 0).astype(np.float32)


def recording(pauses: list[float]) -> tuple[np.ndarray, list[Timed]]:
    """The verses' tokens a frame each with a blank frame after each, the pauses between them
    (seconds of silence), and each verse's true interval (its first token's frame to one past its
    last token's)."""
    frames: list[int] = []
    truth = []
    for (surah, ayah), pause in zip(VERSES, pauses):
        frames += [-1] * int(pause / 0.08)
        ids = tokenizer().text_to_ids(tanzil.verse(surah, ayah, "simple"))
        start = len(frames)
        for token in ids:
            frames += [token, -2]  # -2: a blank inside the verse (heard as speech, 0.0005)
        truth.append(Timed(surah, ayah, start * 0.08, (start + 2 * len(ids) - 1) * 0.08))
    frames += [-1] * 20
    amplitude = {-1: 0.0, -2: 0.0004}
    audio = np.repeat([amplitude.get(f, (f + 1) / 1000) for f in frames], HOP).astype(np.float32)
    return audio, truth


class PerfectModel(InferenceModel):
    def transcribe(self, audio, windowing=None):
        return self.model.transcribe(audio)


def model() -> InferenceModel:
    heard = Heard()
    return PerfectModel(heard, tokenizer(), heard.blank, 0, HOP, RATE)


@pytest.fixture(scope="module")
def session():
    return recording([2.0, 0.8, 1.5, 3.0, 6.0, 0.8, 1.2, 2.5, 1.0])


def segmenter() -> VerseSegmenter:
    return VerseSegmenter(tokenizer(), blank=tokenizer().vocab_size)


def test_heard_whole_every_verse_is_found_within_a_frame(session):
    audio, truth = session
    whole = model()
    log_probs = speech_log_probs(whole, audio, [(0, len(audio))])
    found = [Timed(s.surah, s.ayah, s.start, s.end) for s in segmenter().find(log_probs)]
    scored = score_session(truth, found, len(audio) / RATE)
    assert (scored["recall"], scored["precision"], scored["f1"], scored["edits"]) == (1.0, 1.0, 1.0, 0)
    assert max(scored["boundary_errors_ms"]) <= 80 and scored["false_verses"] == 0


def test_streamed_in_half_seconds_every_verse_is_emitted_once_in_order_within_a_frame(session):
    audio, truth = session
    stream = VerseStream(model(), segmenter().find, Loud())
    emitted = stream_recording(stream, audio, chunk_seconds=0.5)
    found = [Timed(e.surah, e.ayah, e.start, e.end) for e in emitted]
    scored = score_session(truth, found, len(audio) / RATE)
    assert (scored["recall"], scored["precision"], scored["f1"], scored["edits"]) == (1.0, 1.0, 1.0, 0)
    assert max(scored["boundary_errors_ms"]) <= 80
    # each verse emitted once the pause after it is a second old (the hold), within a chunk and the
    # detector's padding (30 ms) and frame (32 ms) of it
    delays = [e.at - e.end for e in emitted[:-1]]
    assert all(1.0 <= delay <= 1.6 for delay in delays), delays
    assert [e.at for e in emitted] == sorted(e.at for e in emitted)


def test_the_pooled_figures_of_sessions():
    a = score_session([Timed(1, 1, 0, 2), Timed(1, 2, 3, 5)], [Timed(1, 1, 0.1, 2.1), Timed(9, 9, 6, 7)], 10.0)
    b = score_session([Timed(1, 3, 0, 2)], [], 4.0)
    assert (a["matched"], a["false_verses"], a["edits"], a["non_recitation_seconds"]) == (1, 1, 1, 6.0)
    pooled = summarize([a, b])
    assert (pooled["recall"], pooled["precision"]) == (1 / 3, 0.5)
    assert pooled["verse_error_rate"] == 2 / 3  # 9:9 for 1:2 (a), 1:3 missed (b)
    assert pooled["false_verses_per_minute"] == pytest.approx(1 / (8.0 / 60))
    assert pooled["boundary_error_ms"]["median"] == pytest.approx(100.0)


def test_a_verses_edges_move_onto_the_speech_it_covers():
    from quranft.matching.segments import VerseSpan
    from quranft.models.streaming import on_speech

    speech = [(0.2, 0.9), (1.3, 2.0), (2.5, 4.6), (6.0, 7.0)]
    # a model's first and last tokens in the margins of non-speech around the stretch it heard
    assert on_speech(VerseSpan(1, 1, 1.0, 5.0, 0.9), speech) == VerseSpan(1, 1, 1.3, 4.6, 0.9)
    # edges already in speech stay where they are
    assert on_speech(VerseSpan(1, 1, 1.5, 3.0, 0.9), speech) == VerseSpan(1, 1, 1.5, 3.0, 0.9)
    # a span over no speech is kept (the detector heard none there: nothing to move it onto)
    assert on_speech(VerseSpan(1, 1, 4.7, 5.9, 0.9), speech) == VerseSpan(1, 1, 4.7, 5.9, 0.9)
