"""Decoding any common container to 16 kHz mono with the right duration."""

from __future__ import annotations

import importlib.util
import sys
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO, encoded, synth
from quranft.data.audio import (AudioDecodeError, content_sha1, decode_bytes, encode, load_audio, pcm16, read_blocks,
                                to_mono)


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


@pytest.mark.parametrize(
    "fmt, rate, channels",
    [("WAV", 16000, 1), ("WAV", 44100, 2), ("FLAC", 22050, 1), ("MP3", 44100, 2), ("OGG", 48000, 2), ("M4A", 44100, 1)],
)
def test_a_file_decoded_in_blocks_gives_load_audios_samples_to_the_bit(tmp_path, fmt, rate, channels):
    """In blocks of 0.7 s: libsndfile's blocks (WAV, FLAC, OGG) or PyAV's frames gathered (MP3,
    M4A), the down-mix a block at a time and soxr's resampler carrying its state from block to
    block; the same samples as the whole file decoded at once."""
    samples = synth(9.3, rate, channels=channels)
    path = tmp_path / f"recording.{fmt.lower()}"
    if fmt == "M4A":
        path.write_bytes(demo_script().encode(samples, "m4a", rate=rate))
    else:
        path.write_bytes(encoded(samples, rate, fmt))
    pieces = list(read_blocks(path, seconds=0.7))
    assert len(pieces) >= 9
    assert all(piece.dtype == np.float32 and piece.ndim == 1 for piece in pieces)
    assert np.array_equal(np.concatenate(pieces), load_audio(path))


def test_a_file_in_blocks_fails_as_load_audio_does_naming_it(tmp_path):
    (tmp_path / "junk.mp3").write_bytes(b"junk")
    (tmp_path / "empty.wav").write_bytes(b"")
    for name in ("empty.wav", "gone.wav"):
        with pytest.raises(AudioDecodeError) as whole:
            load_audio(tmp_path / name)
        with pytest.raises(AudioDecodeError) as blocks:
            list(read_blocks(tmp_path / name))
        assert str(blocks.value) == str(whole.value) and name in str(blocks.value)
    # FFmpeg's message names the file it read (a buffer, '<none>', for load_audio)
    with pytest.raises(AudioDecodeError) as blocks:
        list(read_blocks(tmp_path / "junk.mp3"))
    assert str(blocks.value).startswith(f"{tmp_path / 'junk.mp3'}: soundfile: Error opening: Format not recognised.; "
                                        "ffmpeg: ")
    nan = np.full(16000, np.nan, np.float32)
    sf.write(tmp_path / "nan.wav", nan, 16000, subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match="nan.wav: non-finite samples"):
        list(read_blocks(tmp_path / "nan.wav"))


def test_decoding_in_blocks_holds_a_few_blocks_never_the_file(tmp_path):
    """A 60 s 16 kHz mono WAV (3.84 MB decoded) in blocks of 1 s (16,000 samples, 64,000 bytes of
    float32): what is held at the peak is soundfile's buffer for the block being read, the copy of
    it handed out, the previous block the loop still holds (3 blocks, 192,000 bytes), the check
    that the new block is finite (a byte a sample, 16,000 bytes), and small objects (the
    generators, the file; under 16 KiB); the whole file decoded at once holds 3.84 MB."""
    sf.write(tmp_path / "long.wav", synth(60.0), 16000, subtype="PCM_16")
    samples = 16000
    tracemalloc.start()
    try:
        total = 0
        for block in read_blocks(tmp_path / "long.wav", seconds=1.0):
            total += len(block)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == 60 * samples
    held = 3 * samples * 4 + samples
    assert held <= peak <= held + 16 * 1024, peak


def test_an_mp3_is_decoded_in_blocks_too(tmp_path):
    """A 60 s MP3 (16 kHz mono; 3.84 MB decoded) read in blocks of 1 s by PyAV: at the peak, the
    frames gathered for a block (1 s and at most one 1,152-sample frame more, 68,608 bytes), their
    concatenation and the previous block (2 x 68,608), the finiteness check (17,152) and small
    objects: under 6 blocks of 1 s (384,000 bytes), a tenth of the file decoded whole."""
    sf.write(tmp_path / "long.mp3", synth(60.0), 16000, format="MP3")
    tracemalloc.start()
    try:
        blocks = [len(block) for block in read_blocks(tmp_path / "long.mp3", seconds=1.0)]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(blocks) >= 59 and sum(blocks) == len(load_audio(tmp_path / "long.mp3"))
    assert peak < 6 * 16000 * 4, peak
