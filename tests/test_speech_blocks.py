"""A recording's stretches of speech grouped in blocks as its audio arrives (data.speech_blocks): the
blocks, their audio and the speech intervals are the whole recording's, to the sample, however the
audio is cut, and the audio held is about a block's, never the recording's; heard block by block
(models.streaming.hear_recording), a recording gives the verses that hearing it whole gave. (The
demo base's export on a file in identify: tests/test_identify.py.)"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from conftest import DEMO
from quranft.data.audio import SAMPLE_RATE, load_audio
from quranft.data.speech_blocks import BLOCK_SECONDS, SpeechBlocks, blocks
from quranft.data.vad import VoiceActivity, intervals_of, speech_seconds, speech_stretches
from quranft.models.loading import speech_log_probs
from quranft.models.streaming import hear_recording, on_speech
from quranft.models.windowed import Windowing
from test_streaming import Loud, model, recording, segmenter

HOP = 1280  # a FastConformer's frame at 16 kHz
CLIPS = ["everyayah_001_001.mp3", "user_103_003.m4a", "retasy_108_002.mp3", "everyayah_109_002.mp3",
         "everyayah_112_001.mp3", "user_112_004.m4a", "everyayah_113_001.wav", "everyayah_114_005.mp3"]
# Pauses after each clip: under the join of two stretches (0.5 s) and over it, and long silences
PAUSES = [0.15, 0.45, 0.6, 1.2, 3.0, 8.0, 0.3]


def clips_recording(count: int = 31) -> np.ndarray:
    """`count` demo clips (about 4.7 s each with their pause), from the first sample to the last
    (speech at both ends), the pauses between them faint noise."""
    rng = np.random.default_rng(7)
    clips = [load_audio(DEMO / "benchmark" / name) for name in CLIPS]
    pieces = []
    for i in range(count):
        if i:
            pause = PAUSES[i % len(PAUSES)]
            pieces.append((0.002 * rng.standard_normal(int(pause * SAMPLE_RATE))).astype(np.float32))
        pieces.append(clips[i % len(clips)])
    return np.concatenate(pieces)


@pytest.fixture(scope="module")
def long_recording() -> np.ndarray:
    return clips_recording()  # 2.5 minutes


@pytest.fixture(scope="module")
def vad() -> VoiceActivity:
    return VoiceActivity()


def cut(audio: np.ndarray, sizes) -> list[np.ndarray]:
    """The audio in pieces of `sizes` (enough of them to cover it), the last what is left."""
    pieces, at = [], 0
    for size in sizes:
        if at >= len(audio):
            break
        pieces.append(audio[at:at + size])
        at += size
    assert at >= len(audio)
    return pieces


@pytest.mark.parametrize("seconds", [6.0, BLOCK_SECONDS])
def test_the_blocks_as_the_audio_arrives_are_the_whole_recordings(long_recording, vad, seconds):
    audio = long_recording
    speech = vad.speech(audio)
    groups = blocks(speech_stretches(speech, len(audio), HOP, SAMPLE_RATE), SAMPLE_RATE, seconds)
    assert len(groups) >= (8 if seconds == 6.0 else 2)
    assert any(group[0][1] - group[0][0] > seconds * SAMPLE_RATE for group in groups) == (seconds == 6.0)
    rng = np.random.default_rng(3)
    longest = max(end - start for start, end in speech)
    for sizes in ([SAMPLE_RATE // 2] * 10_000, rng.integers(1, 40 * SAMPLE_RATE, 10_000), [len(audio)]):
        pieces = cut(audio, sizes)
        heard = SpeechBlocks(vad, HOP, SAMPLE_RATE, seconds)
        handed, held = [], 0
        for piece in pieces:
            handed += heard.add(piece)
            held = max(held, heard.held)
        handed += heard.finish()
        assert heard.speech == speech
        assert [(block.start, block.stretches) for block in handed] == [
            (group[0][0], [(first - group[0][0], last - group[0][0]) for first, last in group]) for group in groups]
        for block, group in zip(handed, groups):
            assert np.array_equal(block.audio, audio[group[0][0]:group[-1][1]])
        # Held: the block not yet complete (`seconds`, or its one longer stretch), the speech still
        # open when it is found complete, 0.36 s of padding and margin, and the piece that arrived
        # last (whole pieces are let go)
        if len(pieces) > 1:
            bound = (max(seconds, max(last - first for group in groups for first, last in group) / SAMPLE_RATE)
                     + longest + 0.36) * SAMPLE_RATE + max(len(piece) for piece in pieces)
            assert held <= bound, (held / SAMPLE_RATE, bound / SAMPLE_RATE)


def heard_whole(model, vad, find, audio: np.ndarray, windowing: Windowing = Windowing()):
    """The verses, transcript and speech seconds of a recording as identify heard it before it
    heard recordings as they are decoded: the detector on the whole, every block's stretches from
    the whole recording's audio."""
    speech = intervals_of(vad.probabilities(audio), len(audio) / SAMPLE_RATE, vad.threshold, vad.min_speech,
                          vad.min_silence, vad.pad)
    spans, texts = [], []
    for group in blocks(speech_stretches(speech, len(audio), model.frame_samples, SAMPLE_RATE), SAMPLE_RATE):
        first, last = group[0][0], group[-1][1]
        log_probs = speech_log_probs(model, audio[first:last], [(s - first, e - first) for s, e in group], windowing)
        spans += [on_speech(replace(span, start=round(span.start + first / SAMPLE_RATE, 6),
                                    end=round(span.end + first / SAMPLE_RATE, 6)), speech) for span in find(log_probs)]
        texts.append(model.text(log_probs))
    return spans, " ".join(text for text in texts if text), speech_seconds(speech)


def test_a_recording_heard_as_it_arrives_gives_the_verses_it_gave_heard_whole():
    """A perfect acoustic model on 3 sessions of 9 verses (2.3 minutes, two blocks of stretches),
    in one piece, in pieces of 7 s and of 0.5 s."""
    session, _ = recording([2.0, 0.8, 1.5, 3.0, 6.0, 0.8, 1.2, 2.5, 1.0])
    audio = np.concatenate([session] * 3)
    before = heard_whole(model(), Loud(), segmenter().find, audio)
    assert len(before[0]) == 3 * 9
    for pieces in ([audio], cut(audio, [7 * SAMPLE_RATE + 123] * 100), cut(audio, [SAMPLE_RATE // 2] * 1000)):
        assert hear_recording(model(), segmenter().find, Loud(), iter(pieces)) == before
