"""Decoding audio of any common container to mono float32 at a target rate.

soundfile (libsndfile) reads WAV, FLAC and OGG without system packages; MP3, and anything it
rejects (M4A/AAC phone recordings, for instance), goes through PyAV, whose wheel bundles FFmpeg.
Why MP3 by FFmpeg although libsndfile reads it: libsndfile 1.2.2 reads an MP3 in pieces with
jumps of up to 0.03 at some of the pieces' edges, and one 1e-7 from its whole read on every file
tried, so a recording could not be decoded a block at a time (read_blocks) as it is decoded whole
(load_audio); FFmpeg's frames are the same however they are gathered.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16000  # what every stage decodes to: the rate NVIDIA's model (and the demo's) takes


class AudioDecodeError(ValueError):
    """Audio bytes that no decoder could read."""


SOUNDFILE_ERRORS = (sf.LibsndfileError, RuntimeError, TypeError)  # what libsndfile raises for a format it rejects


# What soundfile says of an MP3 it opened, in an error of FFmpeg's decoding (see the docstring above)
MP3_BY_FFMPEG = "MP3 is decoded by FFmpeg"


def _av_frames(source) -> Iterator[tuple[np.ndarray, int]]:
    """Each decoded frame of the first audio stream of `source` (bytes in a buffer, or a file) as
    (samples of shape (frames, channels), sample rate), by PyAV."""
    import av  # imported lazily: only containers libsndfile rejects need it

    with av.open(source, mode="r") as container:
        if not container.streams.audio:
            raise AudioDecodeError("no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp")
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                yield out.to_ndarray().T, frame.sample_rate


def _soundfile_message(error: Exception) -> str:
    # libsndfile's message names the buffer or file object by its address or name: left out, so
    # that reports listing undecodable rows are the same from one run to the next
    return re.sub(r" ?<_io\.\w+ (object at 0x[0-9a-fA-F]+|name=.*?)>", "", str(error))


def decode_bytes(data: bytes) -> tuple[np.ndarray, int]:
    """Decode audio bytes to (samples of shape (frames, channels), sample rate)."""
    if not data:
        raise AudioDecodeError("empty audio bytes")
    [(samples, rate)] = _file_blocks(io.BytesIO(data), math.inf)  # in one block
    return samples.astype(np.float32, copy=False), rate


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Down-mix (frames, channels) to (frames,) by averaging the channels."""
    if samples.ndim == 1:
        return samples
    if samples.shape[1] == 1:
        return samples[:, 0]
    return samples.mean(axis=1, dtype=np.float32)


def resample(samples: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    if rate == target_rate:
        return samples.astype(np.float32, copy=False)
    return soxr.resample(samples, rate, target_rate, quality="HQ").astype(np.float32, copy=False)


def load_audio(source: bytes | str | Path, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode bytes or a file to mono float32 samples at `target_rate`; a file's errors name it."""
    if not isinstance(source, (str, Path)):
        return _decode(source, target_rate)
    path = Path(source)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise AudioDecodeError(f"{path}: {error.strerror}") from None
    try:
        return _decode(data, target_rate)
    except AudioDecodeError as error:
        raise AudioDecodeError(f"{path}: {error}") from None


def _decode(data: bytes, target_rate: int) -> np.ndarray:
    samples, rate = decode_bytes(data)
    mono = to_mono(samples)
    if not np.all(np.isfinite(mono)):
        raise AudioDecodeError("non-finite samples")
    return resample(mono, rate, target_rate)


# Seconds of a file's audio read_blocks decodes at a time: a block of an hour's recording at 48 kHz
# stereo is 3.8 MB, the whole file 1.4 GB.
READ_SECONDS = 10.0


def read_blocks(path: str | Path, target_rate: int = SAMPLE_RATE,
                seconds: float = READ_SECONDS) -> Iterator[np.ndarray]:
    """A file's audio as `load_audio` decodes it, in blocks of mono float32 at `target_rate`, each
    decoded when it is asked for: about `seconds` of the file at a time is held, never the file
    (libsndfile's block reading; for an MP3 and what libsndfile rejects, PyAV's frames gathered in
    blocks). The same samples as `load_audio`, to the bit: the resampler carries its state from
    block to block (soxr's ResampleStream gives the samples soxr.resample gives on the whole).
    Errors name the file."""
    path = Path(path)
    try:
        handle = path.open("rb")
    except OSError as error:
        raise AudioDecodeError(f"{path}: {error.strerror}") from None
    with handle:
        try:
            if os.fstat(handle.fileno()).st_size == 0:
                raise AudioDecodeError("empty audio bytes")
            yield from _resampled(_file_blocks(handle, seconds), target_rate)
        except AudioDecodeError as error:
            raise AudioDecodeError(f"{path}: {error}") from None


def _file_blocks(handle: BinaryIO, seconds: float) -> Iterator[tuple[np.ndarray, int]]:
    """(samples of shape (frames, channels), rate) of an open file or buffer, about `seconds` at a
    time (math.inf: all of it in one block); soundfile first, PyAV for an MP3 and what soundfile
    rejects."""
    try:
        sound = sf.SoundFile(handle)
    except SOUNDFILE_ERRORS as sf_error:
        handle.seek(0)
        yield from _av_blocks(handle, seconds, _soundfile_message(sf_error))
        return
    if sound.format == "MP3":
        sound.close()
        handle.seek(0)
        yield from _av_blocks(handle, seconds, MP3_BY_FFMPEG)
        return
    with sound:
        if math.isinf(seconds):
            yield sound.read(dtype="float32", always_2d=True), sound.samplerate
            return
        size = max(1, int(seconds * sound.samplerate))
        for samples in sound.blocks(blocksize=size, dtype="float32", always_2d=True):
            yield samples, sound.samplerate


def _av_blocks(handle: BinaryIO, seconds: float, sf_message: str) -> Iterator[tuple[np.ndarray, int]]:
    """PyAV's frames (1,024 samples each for AAC) gathered into blocks of about `seconds` (one block
    for math.inf); an error says why soundfile did not read the file (`sf_message`) too."""
    gathered: list[np.ndarray] = []
    count, rate = 0, None
    try:
        for samples, rate in _av_frames(handle):
            gathered.append(samples)
            count += len(samples)
            if count >= seconds * rate:
                yield np.concatenate(gathered), rate
                gathered, count = [], 0
    except AudioDecodeError:
        raise
    except Exception as av_error:  # PyAV raises many FFmpeg error types
        raise AudioDecodeError(f"soundfile: {sf_message}; ffmpeg: {av_error}") from None
    if rate is None:
        raise AudioDecodeError("no audio frames")
    if gathered:
        yield np.concatenate(gathered), rate


def _resampled(source: Iterator[tuple[np.ndarray, int]], target_rate: int) -> Iterator[np.ndarray]:
    """Each block down-mixed and resampled to `target_rate` as `_decode` does the whole."""
    stream = None
    for samples, rate in source:
        mono = np.ascontiguousarray(to_mono(samples))
        if not np.all(np.isfinite(mono)):
            raise AudioDecodeError("non-finite samples")
        if rate == target_rate:
            yield mono
            continue
        stream = stream or soxr.ResampleStream(rate, target_rate, 1, dtype="float32", quality="HQ")
        resampled = stream.resample_chunk(mono)
        if len(resampled):
            yield resampled
    if stream is not None:
        tail = stream.resample_chunk(np.zeros(0, np.float32), last=True)
        if len(tail):
            yield tail


def pcm16(samples: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] as int16, the form in which audio is written and hashed."""
    return (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype(np.int16)


def content_sha1(pcm: np.ndarray) -> str:
    """Hash of the decoded 16-bit samples: equal for the same audio in any container."""
    return hashlib.sha1(np.ascontiguousarray(pcm).tobytes()).hexdigest()


def encode(pcm: np.ndarray, rate: int, audio_format: str) -> bytes:
    """Encode int16 mono samples as FLAC or WAV bytes (deterministic for equal input)."""
    buffer = io.BytesIO()
    sf.write(buffer, pcm, rate, format=audio_format.upper(), subtype="PCM_16")
    return buffer.getvalue()


@dataclass(frozen=True)
class DecodedClip:
    """A clip decoded to mono float32 at the stage's rate, or why it is not kept."""

    samples: np.ndarray | None
    rate: int
    reason: str | None = None  # undecodable, too_short, too_long or empty_audio; None: kept
    detail: str = ""

    @property
    def duration(self) -> float:
        return 0.0 if self.samples is None else len(self.samples) / self.rate


def decode_clip(data: bytes | str | Path, rate: int = SAMPLE_RATE, min_duration: float = 0.0,
                max_duration: float = math.inf) -> DecodedClip:
    """Decode a clip and apply the duration filter: the one way every stage reads a clip it keeps
    (the data stage, the ASR test set, the benchmark corpus builder)."""
    try:
        samples = load_audio(data, rate)
    except AudioDecodeError as error:
        return DecodedClip(None, rate, "undecodable", str(error))
    clip = DecodedClip(samples, rate)
    if clip.duration < min_duration:
        return DecodedClip(samples, rate, "too_short", f"{clip.duration:.3f} s")
    if clip.duration > max_duration:
        return DecodedClip(samples, rate, "too_long", f"{clip.duration:.3f} s")
    if samples.size == 0:
        return DecodedClip(samples, rate, "empty_audio", "no audio samples")
    return clip


def write_clip(path: str | Path, pcm: np.ndarray, rate: int, audio_format: str) -> None:
    """Write int16 samples (`pcm16`) as a FLAC or WAV file."""
    Path(path).write_bytes(encode(pcm, rate, audio_format))
