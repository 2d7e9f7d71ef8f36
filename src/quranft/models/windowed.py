"""Inference on recordings of any length: the audio cut into windows with context on both sides,
each window's centre kept, the kept outputs joined into one sequence for the whole recording.

As NeMo's buffered CTC inference (streaming_utils.FrameBatchASR) does, on raw audio instead of
features: each window goes through the model's own front end (its per-feature normalisation then
uses the window's statistics, as FrameBatchASR normalises each buffer by its own), encoder and CTC
head, so that the model's working memory is that of one window however long the recording (full
attention grows with the square of the length: 2.5 GB for a 295 s file with the 1.8M-parameter
demo model), and an export, whose positional table ends at its `max_seconds`, takes any length.
Only the audio and the output grow with the recording, linearly.

Windows start on whole encoder frames (`frame_samples`: the front end's hop times the encoder's
subsampling, 1280 samples = 80 ms for a FastConformer at 16 kHz), so that frame i of a window
starting at frame s is frame s + i of the recording. Each window keeps its frames from `context`
after its start (the first window from the recording's start) to `context` before its end (the
last window to the recording's end, its start moved back so that it is a whole window).

A recording that fits in one window is run whole, in the one call the model makes without
windows: the same result, to the bit. numpy only: never torch (the exported models' path).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np

# The export's default max_seconds (40 s, deploy.export): a .nemo and its export window alike, and
# the protocol's clips (at most 30 s) are never windowed.
DEFAULT_WINDOW_SECONDS = 40.0
# Measured on the demo's 87 benchmark clips in 4 to 16 s windows (`python -m quranft window-error`,
# docs/export-and-identify.md#long-recordings): 0.5 s of context lost verses the whole clips gave
# (8 s windows), 1 to 3 s none, and more context stays closer to the whole clip; 2 s on each side
# makes a 40 s window's run 11% longer.
DEFAULT_CONTEXT_SECONDS = 2.0

Output = TypeVar("Output")


@dataclass(frozen=True)
class Span:
    """One window: the model runs on audio samples [start, end) and its output's frames
    [keep_from, keep_to), counted from the window's first frame, are kept (keep_to None: to the
    output's end)."""

    start: int
    end: int
    keep_from: int
    keep_to: int | None


@dataclass(frozen=True)
class Windowing:
    """How a recording is cut: windows of `window_seconds` (the audio passed to the model per call),
    of which `context_seconds` on each side only inform the centre, which is kept."""

    window_seconds: float = DEFAULT_WINDOW_SECONDS
    context_seconds: float = DEFAULT_CONTEXT_SECONDS

    def at_most(self, seconds: float) -> Windowing:
        """The same context in windows of at most `seconds` (an export's max_seconds)."""
        return replace(self, window_seconds=min(self.window_seconds, seconds))

    def frames(self, frame_samples: int, sample_rate: int) -> tuple[int, int]:
        """(window, context) in encoder frames: the whole frames in a window, the context rounded."""
        window = math.floor(self.window_seconds * sample_rate / frame_samples)
        context = round(self.context_seconds * sample_rate / frame_samples)
        if context < 0 or window - 2 * context < 1:
            raise ValueError(f"windows of {self.window_seconds:g} s ({window} frames of {frame_samples} samples) with "
                             f"{self.context_seconds:g} s of context ({context} frames) on each side keep no frame: "
                             "the window must be longer than twice the context")
        return window, context

    def fits(self, samples: int, frame_samples: int, sample_rate: int) -> bool:
        """Whether a recording of `samples` is run whole, in one window."""
        return samples <= self.frames(frame_samples, sample_rate)[0] * frame_samples

    def spans(self, samples: int, frame_samples: int, sample_rate: int) -> list[Span]:
        """The windows of a recording of `samples`, in order; one, the whole recording, when it fits."""
        window, context = self.frames(frame_samples, sample_rate)
        if samples <= window * frame_samples:
            return [Span(0, samples, 0, None)]
        total = math.ceil(samples / frame_samples)  # frames, the last one partial
        spans, start, keep_from = [], 0, 0
        while start + window < total:
            keep_to = start + window - context
            spans.append(Span(start * frame_samples, (start + window) * frame_samples, keep_from - start,
                              keep_to - start))
            start, keep_from = keep_to - context, keep_to
        last = total - window  # at or before `start`: at least `context` frames before keep_from
        spans.append(Span(last * frame_samples, samples, keep_from - last, None))
        return spans


def stitch(run: Callable[[list[np.ndarray]], Sequence[Output]], audio: np.ndarray,
           spans: Sequence[Span]) -> list[Output]:
    """The kept frames of each window's output, in order, to be joined along their first axis:
    `run` takes a list of one window's audio and returns its output, frames first."""
    return [run([audio[span.start:span.end]])[0][span.keep_from:span.keep_to] for span in spans]


def windowed_log_probs(run: Callable[[list[np.ndarray]], Sequence[np.ndarray]], audio: np.ndarray,
                       frame_samples: int, sample_rate: int, windowing: Windowing) -> np.ndarray:
    """A recording's log-probs (frames, classes) from `run` (a batch of clips to their log-probs),
    window by window; `run([audio])[0]` itself when the recording fits in one window."""
    spans = windowing.spans(len(audio), frame_samples, sample_rate)
    if len(spans) == 1:
        return run([audio])[0]
    return np.concatenate(stitch(run, audio, spans))
