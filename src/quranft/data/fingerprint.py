"""Audio fingerprints for the leakage guard: is this training row the same audio as a benchmark clip?

A Haitsma-Kalker style fingerprint: every 16 ms, 32 bits that say whether the energy difference
between neighbouring bands (300 to 3000 Hz, log-spaced) grew or shrank since the previous frame.
The bits survive re-encoding (MP3, AAC), resampling, down-mixing and gain changes, and a clip that
was cut out of a longer one (a verse inside a multi-verse clip) lines up with it at some offset.
Benchmark clips are indexed by their 32-bit words; a query looks its words up, votes for
(clip, offset) alignments and confirms the best ones by the bit error rate over the overlap.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np
import scipy.fft
import soxr

RATE = 8000
FRAME = 2048  # 256 ms
HOP = 128  # 16 ms: a sixteenth of the frame, so any cut point is within 8 ms of a frame start
BANDS = 33
LOW_HZ, HIGH_HZ = 300.0, 3000.0
SILENCE_DB = -55.0  # frames quieter than this (relative to full scale) carry no usable bits

_WINDOW = np.hanning(FRAME).astype(np.float32)
_EDGES = np.geomspace(LOW_HZ, HIGH_HZ, BANDS + 1)
_BIN_OF_EDGE = np.round(_EDGES / (RATE / FRAME)).astype(int)
_BIT_WEIGHTS = (1 << np.arange(32, dtype=np.uint64)).astype(np.uint64)


@dataclass(frozen=True)
class Fingerprint:
    words: np.ndarray  # uint32 per frame
    loud: np.ndarray  # bool per frame: False where the frame is near silence


def fingerprint(samples: np.ndarray, rate: int) -> Fingerprint:
    """Fingerprint mono float samples at any rate."""
    audio = soxr.resample(samples, rate, RATE) if rate != RATE else samples
    audio = np.asarray(audio, dtype=np.float32)
    if len(audio) < FRAME + HOP:
        return Fingerprint(np.zeros(0, np.uint32), np.zeros(0, bool))
    frames = np.lib.stride_tricks.sliding_window_view(audio, FRAME)[::HOP] * _WINDOW
    spectrum = scipy.fft.rfft(frames, axis=1)[:, _BIN_OF_EDGE[0] : _BIN_OF_EDGE[-1]]
    power = spectrum.real**2 + spectrum.imag**2
    cumulative = np.concatenate(
        [np.zeros((len(power), 1), power.dtype), np.cumsum(power, axis=1)], axis=1
    )
    edges = _BIN_OF_EDGE - _BIN_OF_EDGE[0]
    energy = cumulative[:, edges[1:]] - cumulative[:, edges[:-1]]
    band_delta = energy[:, :-1] - energy[:, 1:]  # (frames, 32)
    bits = (band_delta[1:] - band_delta[:-1]) > 0
    words = (bits.astype(np.uint64) @ _BIT_WEIGHTS).astype(np.uint32)
    level_db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    loud = level_db[1:] > SILENCE_DB
    return Fingerprint(words, loud)


def bit_error_rate(a: np.ndarray, b: np.ndarray) -> float:
    """Share of differing bits between two equally long word arrays."""
    diff = np.bitwise_xor(a, b)
    return float(np.unpackbits(diff.view(np.uint8)).mean())


@dataclass
class FingerprintIndex:
    """Benchmark clips' fingerprints, indexed by word for fast lookup."""

    ids: list[str] = field(default_factory=list)
    prints: list[Fingerprint] = field(default_factory=list)
    _table: dict[int, list[tuple[int, int]]] = field(default_factory=lambda: defaultdict(list))

    def add(self, clip_id: str, print_: Fingerprint) -> None:
        clip = len(self.ids)
        self.ids.append(clip_id)
        self.prints.append(print_)
        for frame in np.flatnonzero(print_.loud):
            self._table[int(print_.words[frame])].append((clip, int(frame)))

    def __len__(self) -> int:
        return len(self.ids)

    def match(
        self, query: Fingerprint, max_bit_error_rate: float, min_overlap_frames: int = 24
    ) -> tuple[str, float] | None:
        """The benchmark clip that `query` shares its audio with, and the bit error rate.

        A match means one of the two lies inside the other (or they are the same clip), with
        at most `max_bit_error_rate` of the overlapping bits differing.
        """
        votes: Counter[tuple[int, int]] = Counter()
        for frame in np.flatnonzero(query.loud):
            for clip, clip_frame in self._table.get(int(query.words[frame]), ()):
                votes[(clip, clip_frame - int(frame))] += 1
        best: tuple[str, float] | None = None
        for (clip, offset), _count in votes.most_common(8):
            reference = self.prints[clip]
            start_q = max(0, -offset)
            start_r = max(0, offset)
            length = min(len(query.words) - start_q, len(reference.words) - start_r)
            shorter = min(len(query.words), len(reference.words))
            if length < max(min_overlap_frames, int(0.9 * shorter)):
                continue
            both_loud = (
                query.loud[start_q : start_q + length] & reference.loud[start_r : start_r + length]
            )
            if both_loud.sum() < min_overlap_frames:
                continue
            ber = bit_error_rate(
                query.words[start_q : start_q + length][both_loud],
                reference.words[start_r : start_r + length][both_loud],
            )
            if ber <= max_bit_error_rate and (best is None or ber < best[1]):
                best = (self.ids[clip], ber)
        return best

    def to_arrays(self) -> dict[str, np.ndarray]:
        lengths = np.array([len(p.words) for p in self.prints], dtype=np.int64)
        return {
            "ids": np.array(self.ids, dtype=str),
            "lengths": lengths,
            "words": np.concatenate([p.words for p in self.prints]) if self.prints else np.zeros(0, np.uint32),
            "loud": np.concatenate([p.loud for p in self.prints]) if self.prints else np.zeros(0, bool),
        }

    @classmethod
    def from_arrays(cls, arrays) -> "FingerprintIndex":
        index = cls()
        start = 0
        for clip_id, length in zip(arrays["ids"].tolist(), arrays["lengths"].tolist()):
            end = start + length
            index.add(clip_id, Fingerprint(arrays["words"][start:end], arrays["loud"][start:end]))
            start = end
        return index
