"""Voice-activity detection: where a recording holds speech, so that nothing is matched elsewhere.

The detector is Silero VAD (the `silero-vad` package): its ONNX model, shipped inside the package,
run by onnxruntime. Its "sequence" graph takes a block of 32 ms frames in one call and gives each
frame's speech probability, the same figures as the streaming graph frame by frame. The package's
own Python helpers import torch when the package is imported, and the ONNX path of `identify` must
not need torch: so the model file is found without importing the package, and the probabilities
are turned into speech intervals here, by the same rule as its `get_speech_timestamps` (speech
starts at a frame at or above `threshold`, ends after `min_silence` under `threshold - 0.15`;
shorter than `min_speech` is dropped; each interval padded by `pad`).

numpy and onnxruntime only.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RATE = 16000
FRAME = 512  # samples of a frame of the 16 kHz graph (32 ms)
CONTEXT = 64  # samples of the previous frame each frame is given
STATE = 128  # the LSTM's width
BLOCK_FRAMES = 512  # frames per call of the graph (16.4 s of audio): memory does not grow with length
MODEL_FILE = "silero_vad_16k_sequence.onnx"

Interval = tuple[float, float]  # seconds
MIN_SPEECH_SECONDS = 0.25  # a burst shorter than this is not speech; less speech than this, no recitation


def model_path() -> Path:
    """The sequence graph inside the installed silero-vad package (found without importing it)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("silero-vad is not installed (pip install silero-vad): the voice-activity "
                                  "detector's model ships in it")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: silero-vad's sequence model is missing (silero-vad 6.2 or later)")
    return path


def _blocks(audio: np.ndarray, previous: np.ndarray):
    """Blocks of frames, each frame with the last CONTEXT samples of the one before (`previous`
    before the first), the last frame zero-padded: the graph's input."""
    frames = -(-len(audio) // FRAME)
    for first in range(0, frames, BLOCK_FRAMES):
        count = min(BLOCK_FRAMES, frames - first)
        block = np.zeros((count, FRAME), np.float32)
        samples = audio[first * FRAME:(first + count) * FRAME]
        block.reshape(-1)[:len(samples)] = samples
        context = np.empty((count, CONTEXT), np.float32)
        context[0] = previous
        context[1:] = block[:-1, -CONTEXT:]
        previous = block[-1, -CONTEXT:].copy()
        yield np.concatenate([context, block], axis=1)


@dataclass
class VoiceActivity:
    """Speech intervals of 16 kHz mono audio by Silero VAD (thresholds as its defaults)."""

    threshold: float = 0.5
    min_speech: float = MIN_SPEECH_SECONDS  # seconds; shorter bursts are not speech
    min_silence: float = 0.1  # seconds under the lower threshold that end a stretch of speech
    pad: float = 0.03  # seconds added on each side of an interval
    threads: int = 1

    def __post_init__(self):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = max(1, self.threads)
        self._session = ort.InferenceSession(str(model_path()), options, providers=["CPUExecutionProvider"])

    def settings(self) -> dict:
        return {"model": f"silero-vad {MODEL_FILE}", "threshold": self.threshold, "min_speech": self.min_speech,
                "min_silence": self.min_silence, "pad": self.pad}

    def probabilities(self, audio: np.ndarray, state: tuple | None = None) -> np.ndarray:
        """Each 32 ms frame's speech probability; from `state` (SpeechTracker's) when given, which
        is then carried on in place."""
        audio = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        if state is None:
            state = [np.zeros((1, 1, STATE), np.float32), np.zeros((1, 1, STATE), np.float32),
                     np.zeros(CONTEXT, np.float32)]
        out = []
        for block in _blocks(audio, state[2]):
            probs, state[0], state[1] = self._session.run(["speech_probs", "hn", "cn"],
                                                          {"input": block, "h": state[0], "c": state[1]})
            state[2] = block[-1, -CONTEXT:].copy()
            out.append(np.asarray(probs, np.float32).reshape(-1))
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def speech(self, audio: np.ndarray) -> list[Interval]:
        """The intervals of speech, in seconds, in order and apart."""
        return intervals_of(self.probabilities(audio), len(audio) / RATE, self.threshold, self.min_speech,
                            self.min_silence, self.pad)


class SpeechTracker:
    """The speech probabilities of a recording as it arrives (a stream), the detector's state
    carried from one piece to the next: the same figures as `probabilities` of the whole, frame by
    frame, for the whole frames received."""

    def __init__(self, vad: VoiceActivity):
        self.vad = vad
        self._state = [np.zeros((1, 1, STATE), np.float32), np.zeros((1, 1, STATE), np.float32),
                       np.zeros(CONTEXT, np.float32)]
        self._pending = np.zeros(0, np.float32)
        self._probs: list[np.ndarray] = []
        self.probs = np.zeros(0, np.float32)

    def add(self, samples: np.ndarray) -> None:
        pending = np.concatenate([self._pending, np.asarray(samples, np.float32).reshape(-1)])
        whole = len(pending) // FRAME * FRAME
        if whole:
            self._probs.append(self.vad.probabilities(pending[:whole], self._state))
            self.probs = np.concatenate(self._probs)
            self._probs = [self.probs]
        self._pending = pending[whole:]

    def finish(self) -> None:
        """The recording ended: its last, partial frame heard zero-padded, as `probabilities` of
        the whole hears it."""
        if len(self._pending):
            self.probs = np.concatenate([self.probs, self.vad.probabilities(self._pending, self._state)])
            self._probs = [self.probs]
            self._pending = np.zeros(0, np.float32)

    def speech(self, start: float, end: float) -> list[Interval]:
        """The speech intervals between `start` and `end` seconds, relative to `start`."""
        step = FRAME / RATE
        first = int(start / step)
        shift = first * step - start  # the first frame's start, relative to `start` (at most 0)
        found = intervals_of(self.probs[first:int(end / step)], end - start - shift, self.vad.threshold,
                             self.vad.min_speech, self.vad.min_silence, self.vad.pad)
        return [(max(0.0, b + shift), max(0.0, e + shift)) for b, e in found]


def intervals_of(probs: np.ndarray, duration: float, threshold: float = 0.5, min_speech: float = MIN_SPEECH_SECONDS,
                 min_silence: float = 0.1, pad: float = 0.03) -> list[Interval]:
    """Speech intervals (seconds) from per-frame probabilities: Silero's rule (module docstring)."""
    edges = SpeechEdges(threshold, min_silence)
    edges.add(probs)
    return padded(edges.found(duration), duration, min_speech, pad)


class SpeechEdges:
    """Silero's rule read frame by frame as the probabilities arrive (`add`): where speech starts
    and ends, before the short bursts are dropped and the intervals padded (`padded`). An interval
    once closed (`closed`) never changes; the one still open (`open_since`, a frame) ends where
    more probabilities say, or at the recording's end (`found`)."""

    def __init__(self, threshold: float = 0.5, min_silence: float = 0.1):
        self.threshold, self.min_silence = threshold, min_silence
        self.frames = 0  # read so far
        self.closed: list[list[float]] = []  # [start, end] seconds
        self.open_since: int | None = None  # the frame the open interval starts at
        self._quiet_since: int | None = None

    def add(self, probs: np.ndarray) -> None:
        step = FRAME / RATE
        low = max(self.threshold - 0.15, 0.01)
        start, quiet_since = self.open_since, self._quiet_since
        for frame, p in enumerate(np.asarray(probs, dtype=np.float32), start=self.frames):
            if p >= self.threshold:
                quiet_since = None
                if start is None:
                    start = frame
            elif start is not None and p < low:
                quiet_since = frame if quiet_since is None else quiet_since
                if (frame - quiet_since + 1) * step >= self.min_silence:
                    self.closed.append([start * step, quiet_since * step])
                    start = quiet_since = None
        self.frames += len(probs)
        self.open_since, self._quiet_since = start, quiet_since

    def found(self, duration: float) -> list[list[float]]:
        """Every interval, the open one ending at `duration` (seconds): the recording ended."""
        step = FRAME / RATE
        return self.closed + ([[self.open_since * step, duration]] if self.open_since is not None else [])


def padded(found: list[list[float]], duration: float, min_speech: float = MIN_SPEECH_SECONDS,
           pad: float = 0.03) -> list[Interval]:
    """The intervals of `found` (SpeechEdges) of at least `min_speech`, each widened by `pad` (within
    the recording's `duration`), those that then touch joined."""
    merged: list[list[float]] = []
    for begin, end in found:
        if end - begin < min_speech:
            continue
        begin, end = max(0.0, begin - pad), min(duration, end + pad)
        if merged and begin <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([begin, end])
    return [(round(b, 4), round(e, 4)) for b, e in merged]


def speech_seconds(intervals: list[Interval]) -> float:
    return float(sum(end - start for start, end in intervals))


def speech_frames(intervals: list[Interval], frames: int, frame_seconds: float) -> np.ndarray:
    """Which of `frames` model frames (each `frame_seconds` long) have their centre in speech."""
    centres = (np.arange(frames) + 0.5) * frame_seconds
    mask = np.zeros(frames, bool)
    for start, end in intervals:
        mask |= (centres >= start) & (centres < end)
    return mask


# Seconds of audio kept on each side of speech when the model hears the speech alone: a CTC model
# emits a token some frames off the sound it hears (the demo base: a clip's first word 0.2 s before
# the detector's start).
MARGIN = 0.3
# Speech intervals closer than this are heard as one stretch (the pauses inside a verse).
JOIN = 0.5


def speech_stretches(intervals: list[Interval], samples: int, frame_samples: int, rate: int = RATE,
                     margin: float = MARGIN, join: float = JOIN) -> list[tuple[int, int]]:
    """The stretches of a recording of `samples` samples the model is to hear: the speech intervals
    widened by `margin`, those closer than `join` joined, as [start, end) samples, each start on a
    boundary of the model's frames (`frame_samples`), so that its frames are the recording's."""
    stretches: list[list[int]] = []
    for start, end in intervals:
        first = max(0, int((start - margin) * rate)) // frame_samples * frame_samples
        last = min(samples, int(np.ceil((end + margin) * rate)))
        if stretches and first - stretches[-1][1] < join * rate:
            stretches[-1][1] = max(stretches[-1][1], last)
        else:
            stretches.append([first, last])
    return [(first, last) for first, last in stretches]
