"""Audio for the demo corpus (scripts/make_demo_corpus.py): espeak-ng speech, the two domains, containers.

The demo is a domain shift, as the real project is (a model pretrained on broadcast Arabic,
fine-tuned on recitation):
- the base domain, on which the demo base model is pretrained: a few espeak-ng voices reading at a
  broadcast pace, clean and full-band (`render` at 35-45 dB SNR);
- the shifted domain of the fine-tuning sources and the benchmark: other voices reading slower, as
  a reciter does, through one of four recording conditions (`CONDITIONS`): noise, a phone-like band
  limit with saturation, a reverberant room, or a noisy room.
The benchmark's negatives, clips with no verse in them, are made of speech in other languages and
of what else a microphone hears (`room_tone`, `babble`, `tune`).
Everything random comes from the caller's seeded generator.
"""

from __future__ import annotations

import io
import subprocess
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr
from scipy import signal

RATE = 16000
CONDITIONS = ("noise", "phone", "room", "noisy room")


@dataclass(frozen=True)
class Voice:
    variant: str  # an espeak-ng voice variant; "" for the language's default voice
    speed: int  # words per minute
    pitch: int  # 0-99
    language: str = "ar"  # an espeak-ng language: the benchmark's negatives speak others


def speak(text: str, voice: Voice) -> np.ndarray:
    """espeak-ng's rendering of `text` as float32 at 16 kHz."""
    name = f"{voice.language}+{voice.variant}" if voice.variant else voice.language
    result = subprocess.run(
        ["espeak-ng", "-v", name, "-s", str(voice.speed), "-p", str(voice.pitch), "--stdout", text],
        capture_output=True,
        check=True,
    )
    samples, rate = sf.read(io.BytesIO(result.stdout), dtype="float32")
    return soxr.resample(samples, rate, RATE).astype(np.float32)


def render(speech: np.ndarray, rng: np.random.Generator, snr_db: float, pad: bool = True) -> np.ndarray:
    """Pad with a little silence (unless `pad` is false: a long-form session's verse times must stay
    where they are), set a random level and add white noise at `snr_db`."""
    lead, tail = (int(RATE * rng.uniform(0.1, 0.35)) for _ in range(2)) if pad else (0, 0)
    audio = np.concatenate([np.zeros(lead, np.float32), speech, np.zeros(tail, np.float32)])
    audio = audio * (rng.uniform(0.4, 0.85) / max(float(np.abs(audio).max()), 1e-6))
    level = np.sqrt(np.mean(speech**2)) * np.abs(audio).max() / max(float(np.abs(speech).max()), 1e-6)
    noise = rng.normal(0.0, level * 10 ** (-snr_db / 20), len(audio))
    return np.clip(audio + noise, -1, 1).astype(np.float32)


def phone(speech: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A phone-like channel: 300-3400 Hz band, some saturation."""
    sos = signal.butter(4, [300, 3400], btype="bandpass", fs=RATE, output="sos")
    banded = signal.sosfilt(sos, speech)
    drive = rng.uniform(1.5, 3.0)
    peak = max(float(np.abs(banded).max()), 1e-6)
    return (np.tanh(drive * banded / peak) / np.tanh(drive)).astype(np.float32)


def room(speech: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A reverberant room: an exponentially decaying noise impulse response, RT60 0.3-0.6 s."""
    rt60 = rng.uniform(0.3, 0.6)
    n = int(RATE * rt60)
    response = rng.normal(0, 1, n) * np.exp(-6.9 * np.arange(n) / n)
    response[0] = 0.0
    response = 0.6 * response / np.sqrt(np.sum(response**2))
    response[0] = 1.0
    wet = signal.fftconvolve(speech, response)[: len(speech) + n // 2]
    return (wet / max(float(np.abs(wet).max()), 1e-6)).astype(np.float32)


def shifted(speech: np.ndarray, rng: np.random.Generator, condition: str | None = None,
            pad: bool = True) -> np.ndarray:
    """`speech` in the shifted domain: one of CONDITIONS (chosen at random unless given), then
    padding (unless `pad` is false), level and noise."""
    condition = condition or CONDITIONS[int(rng.integers(len(CONDITIONS)))]
    if condition == "noise":
        return render(speech, rng, rng.uniform(8, 16), pad)
    if condition == "phone":
        return render(phone(speech, rng), rng, rng.uniform(15, 25), pad)
    if condition == "room":
        return render(room(speech, rng), rng, rng.uniform(15, 25), pad)
    return render(room(speech, rng), rng, rng.uniform(12, 18), pad)


def room_tone(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A quiet room with nobody speaking: rumble (brown noise from 40 Hz) at about -50 dBFS and mains
    hum (50 Hz and two harmonics) a little under it."""
    n = int(RATE * seconds)
    rumble = signal.sosfilt(signal.butter(2, 40, btype="highpass", fs=RATE, output="sos"),
                            np.cumsum(rng.normal(0, 1, n)))
    rumble *= 10 ** (-50 / 20) / max(float(np.sqrt(np.mean(rumble**2))), 1e-12)
    t = np.arange(n) / RATE
    hum = sum(10 ** (-(56 + 6 * k) / 20) * np.sin(2 * np.pi * 50 * (k + 1) * t + rng.uniform(0, 2 * np.pi))
              for k in range(3))
    return (rumble + hum).astype(np.float32)


def babble(parts: list[np.ndarray], rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Several voices at once, each starting within the first second at its own level: speech that
    no one word can be told from."""
    mix = np.zeros(int(RATE * seconds), np.float32)
    for part in parts:
        start = int(rng.integers(0, RATE))
        part = part[: len(mix) - start]
        mix[start : start + len(part)] += part * rng.uniform(0.5, 1.0) / max(float(np.abs(part).max()), 1e-6)
    return mix


def tune(rng: np.random.Generator, notes: int) -> np.ndarray:
    """Something like music: `notes` plucked notes of a pentatonic scale, 0.3-0.6 s each (three
    harmonics, dying away)."""
    scale = 220.0 * 2 ** (np.array([0, 2, 4, 7, 9, 12, 14, 16]) / 12)
    pieces = []
    for _ in range(notes):
        t = np.arange(int(RATE * rng.uniform(0.3, 0.6))) / RATE
        pitch = scale[int(rng.integers(len(scale)))]
        tone = sum(np.sin(2 * np.pi * pitch * (k + 1) * t) / (k + 1) ** 2 for k in range(3))
        pieces.append(tone * np.exp(-t / 0.25) * np.minimum(1.0, t / 0.01))
    return (0.5 * np.concatenate(pieces)).astype(np.float32)


def encode(audio: np.ndarray, fmt: str, rate: int = RATE, channels: int = 1, bitrate: int | None = None) -> bytes:
    """Bytes of `audio` (16 kHz mono) in a container: wav, flac, mp3, ogg or m4a; an mp3 at 16 kHz
    at an average `bitrate` (bits/s) when one is given, else at libsndfile's default (VBR)."""
    if rate != RATE:
        audio = soxr.resample(audio, RATE, rate).astype(np.float32)
    if channels == 2:  # a slightly different right channel, as from a real stereo recording
        audio = np.stack([audio, 0.8 * audio], axis=1)
    if fmt == "m4a":
        return _encode_m4a(audio, rate)
    subtype = {"wav": "PCM_16", "flac": "PCM_16", "mp3": "MPEG_LAYER_III", "ogg": "VORBIS"}[fmt]
    options = {}
    if bitrate is not None:
        if fmt != "mp3" or rate != RATE:
            raise ValueError("a bitrate is for 16 kHz mp3 only")
        # libsndfile takes an MPEG-2 (16 kHz) bitrate as 160 kbit/s less compression_level times 152.
        # An average bitrate, not a constant one: LAME then writes the header that tells the decoder
        # its delay, and the file decodes aligned to the sample (a constant-bitrate one 1,105
        # samples late).
        options = {"bitrate_mode": "AVERAGE", "compression_level": (160 - bitrate / 1000) / 152}
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format=fmt.upper(), subtype=subtype, **options)
    return buffer.getvalue()


def _encode_m4a(audio: np.ndarray, rate: int) -> bytes:
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono" if audio.ndim == 1 else "stereo"
        planar = audio.reshape(1, -1) if audio.ndim == 1 else audio.T.copy()
        frame = av.AudioFrame.from_ndarray(planar.astype(np.float32), format="fltp", layout=stream.layout.name)
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()
