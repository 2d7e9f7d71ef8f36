"""Decoding any common container to 16 kHz mono with the right duration."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from conftest import REPO, encoded, synth
from quranft.data.audio import AudioDecodeError, content_sha1, decode_bytes, encode, load_audio, pcm16, to_mono


def demo_script():
    spec = importlib.util.spec_from_file_location("make_demo_corpus", REPO / "scripts" / "make_demo_corpus.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the module loads
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "fmt, rate, channels",
    [("WAV", 16000, 1), ("WAV", 44100, 2), ("FLAC", 22050, 1), ("MP3", 16000, 1), ("OGG", 48000, 2)],
)
def test_decodes_to_16k_mono_with_the_right_duration(fmt, rate, channels):
    seconds = 2.5
    data = encoded(synth(seconds, rate, channels=channels), rate, fmt)
    samples = load_audio(data, 16000)
    assert samples.ndim == 1 and samples.dtype == np.float32
    # Lossy codecs pad a few milliseconds; the duration stays within 60 ms.
    assert abs(len(samples) / 16000 - seconds) < (0.001 if fmt in ("WAV", "FLAC") else 0.06)
    assert 0.05 < np.abs(samples).max() <= 1.0


def test_m4a_phone_recordings_decode_through_ffmpeg():
    data = demo_script().encode(synth(3.0), "m4a", rate=44100)
    samples = load_audio(data, 16000)
    assert abs(len(samples) / 16000 - 3.0) < 0.1


def test_down_mix_averages_the_channels():
    stereo = synth(1.0, channels=2)  # right channel is half the left
    mono = to_mono(stereo)
    np.testing.assert_allclose(mono, 0.75 * stereo[:, 0], atol=1e-6)
    decoded, rate = decode_bytes(encoded(stereo, 16000, "WAV"))
    assert decoded.shape == (16000, 2) and rate == 16000


def test_resampling_keeps_a_tone_at_its_frequency():
    rate = 44100
    t = np.arange(rate) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out = load_audio(encoded(tone, rate, "WAV"), 16000)
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) * 16000 / len(out) - 440) < 2


@pytest.mark.parametrize("data", [b"", b"RIFF\x00\x00\x00\x00WAVEfmt junk", b"\x00" * 1000])
def test_undecodable_bytes_raise_a_decode_error(data):
    with pytest.raises(AudioDecodeError):
        load_audio(data)


def test_an_undecodable_row_is_described_the_same_way_every_time():
    """The data stage's report lists undecodable rows with this message: no buffer address in it."""
    messages = []
    for _ in range(2):
        with pytest.raises(AudioDecodeError) as error:
            load_audio(bytes(b"junk"))
        messages.append(str(error.value))
    assert messages[0] == messages[1]
    assert messages[0].startswith("soundfile: Error opening: Format not recognised.; ffmpeg: ")
    assert "0x" not in messages[0]


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(AudioDecodeError, match="nothing.wav"):
        load_audio(tmp_path / "nothing.wav")


def test_content_hash_ignores_the_container():
    pcm = pcm16(synth(1.0))
    assert content_sha1(pcm) == content_sha1(pcm16(load_audio(encode(pcm, 16000, "flac"))))
    assert content_sha1(pcm) == content_sha1(pcm16(load_audio(encode(pcm, 16000, "wav"))))
