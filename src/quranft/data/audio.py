"""Decoding audio of any common container to mono float32 at a target rate.

soundfile (libsndfile) reads WAV, FLAC, OGG and MP3 without system packages; anything it rejects
(M4A/AAC phone recordings, for instance) goes through PyAV, whose wheel bundles FFmpeg.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16000  # what every stage decodes to: the rate NVIDIA's model (and the demo's) takes


class AudioDecodeError(ValueError):
    """Audio bytes that no decoder could read."""


def _decode_with_soundfile(data: bytes) -> tuple[np.ndarray, int]:
    samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return samples, rate


def _decode_with_av(data: bytes) -> tuple[np.ndarray, int]:
    import av  # imported lazily: only containers libsndfile rejects need it

    chunks = []
    rate = None
    with av.open(io.BytesIO(data), mode="r") as container:
        if not container.streams.audio:
            raise AudioDecodeError("no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp")
        for frame in container.decode(stream):
            rate = frame.sample_rate
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray())
    if not chunks or rate is None:
        raise AudioDecodeError("no audio frames")
    planar = np.concatenate(chunks, axis=1)  # (channels, samples)
    return planar.T.astype(np.float32, copy=False), rate


def decode_bytes(data: bytes) -> tuple[np.ndarray, int]:
    """Decode audio bytes to (samples of shape (frames, channels), sample rate)."""
    if not data:
        raise AudioDecodeError("empty audio bytes")
    try:
        return _decode_with_soundfile(data)
    except (sf.LibsndfileError, RuntimeError, TypeError) as sf_error:
        try:
            return _decode_with_av(data)
        except AudioDecodeError:
            raise
        except Exception as av_error:  # PyAV raises many FFmpeg error types
            # libsndfile's message names the buffer by its address: left out, so that reports
            # listing undecodable rows are the same from one run to the next
            sf_message = re.sub(r" ?<_io\.BytesIO object at 0x[0-9a-fA-F]+>", "", str(sf_error))
            raise AudioDecodeError(f"soundfile: {sf_message}; ffmpeg: {av_error}") from None


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
