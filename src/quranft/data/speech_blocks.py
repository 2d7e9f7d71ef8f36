"""A recording's stretches of speech grouped in blocks as its audio arrives, only the audio of the
block not yet complete held: what hearing a recording holds does not grow with its length.

The blocks are those of the whole recording, `blocks(speech_stretches(VoiceActivity.speech(audio)))`,
the same to the sample, however the audio is cut into pieces: the detector follows the pieces
(vad.SpeechTracker: its probabilities are those of the whole, to the bit), its intervals are read
frame by frame (vad.SpeechEdges), and a block is handed out once nothing still to come can change
it. An interval once closed never changes; from more speech, the intervals, stretches and blocks
made of the closed ones change only at their last (the last interval may be joined by the next
when padded, the last stretch by the next within `join`, and the last block may take the next
stretch). Speech still to come starts no earlier than the interval still open (or the first frame
not yet heard), so its stretch no earlier than `bound`: the last stretch is final once `bound` is
`join` past its end, and the last block once no stretch from `bound` on fits in it.

numpy and onnxruntime only (the detector's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quranft.data.vad import FRAME, JOIN, MARGIN, RATE, Interval, SpeechEdges, SpeechTracker, VoiceActivity, padded, \
    speech_stretches

# A long recording's verses are read block by block, each block whole stretches of speech of at most
# this many seconds (cut at a pause between two stretches), so that only one block's audio and
# log-probs are held at a time: 184 MB an hour of log-probs at the real model's 1,025 classes, 6 MB
# a block.
BLOCK_SECONDS = 120.0


def blocks(stretches: list[tuple[int, int]], rate: int, seconds: float = BLOCK_SECONDS) -> list[list[tuple[int, int]]]:
    """The stretches ([start, end) samples) grouped in order, each group spanning at most `seconds`
    (a stretch longer than that is a group of its own)."""
    groups: list[list[tuple[int, int]]] = []
    for stretch in stretches:
        if groups and stretch[1] - groups[-1][0][0] <= seconds * rate:
            groups[-1].append(stretch)
        else:
            groups.append([stretch])
    return groups


@dataclass(frozen=True)
class SpeechBlock:
    start: int  # the block's first sample in the recording
    audio: np.ndarray  # the recording's samples from `start` to the end of its last stretch
    stretches: list[tuple[int, int]]  # [start, end) samples, counted from `start`


class SpeechBlocks:
    """Feed it a recording's audio as it is decoded (`add`), then `finish`: each returns the blocks
    complete then, in order; `speech` is the speech intervals (seconds) known so far, the whole
    recording's after `finish`."""

    def __init__(self, vad: VoiceActivity, frame_samples: int, rate: int = RATE, seconds: float = BLOCK_SECONDS):
        self.vad, self.frame_samples, self.rate, self.seconds = vad, frame_samples, rate, seconds
        self.tracker = SpeechTracker(vad)
        self.edges = SpeechEdges(vad.threshold, vad.min_silence)
        self.samples = 0  # received
        self.speech: list[Interval] = []
        self._pieces: list[np.ndarray] = []  # the audio received from `_held_from` on
        self._held_from = 0
        # What the blocks handed out cover, never read again: their intervals, and how many of the
        # detector's intervals they hold (the others are padded, widened and grouped afresh).
        self._speech_done: list[Interval] = []
        self._found_done = 0

    @property
    def held(self) -> int:
        """Samples of audio held now."""
        return sum(len(piece) for piece in self._pieces)

    def add(self, samples: np.ndarray) -> list[SpeechBlock]:
        samples = np.asarray(samples, np.float32).reshape(-1)
        self._pieces.append(samples)
        self.samples += len(samples)
        self.tracker.add(samples)
        return self._ready(final=False)

    def finish(self) -> list[SpeechBlock]:
        """The recording ended: its last blocks."""
        self.tracker.finish()
        return self._ready(final=True)

    def _ready(self, final: bool) -> list[SpeechBlock]:
        self.edges.add(self.tracker.probs[self.edges.frames:])
        # Before the end, only the closed intervals, within the whole frames heard (their padded
        # ends and margins lie inside them: a closed interval is followed by min_silence heard).
        heard = self.samples if final else self.edges.frames * FRAME
        found = (self.edges.found(heard / RATE) if final else self.edges.closed)[self._found_done:]
        speech = padded(found, heard / RATE, self.vad.min_speech, self.vad.pad)
        self.speech = self._speech_done + speech
        groups = blocks(speech_stretches(speech, heard, self.frame_samples, self.rate), self.rate, self.seconds)
        complete = len(groups) if final else self._complete(groups)
        ready = [self._block(group) for group in groups[:complete]]
        if complete:
            end = groups[complete - 1][-1][1] / self.rate
            self._speech_done += [interval for interval in speech if interval[0] < end]
            self._found_done += sum(start < end for start, _ in found)
        # Still needed: the first block not complete, else what speech still to come may start at
        if complete < len(groups):
            self._drop_before(groups[complete][0][0])
        else:
            self._drop_before(self.samples if final else self._bound())
        return ready

    def _bound(self) -> int:
        """The earliest sample at which a stretch of speech still to come can start: its interval
        starts no earlier than the one open, or the first frame not yet read; then padded and
        widened as speech_stretches does (1 ms less: the intervals' times are rounded)."""
        frame = self.edges.open_since if self.edges.open_since is not None else self.edges.frames
        begin = frame * FRAME / RATE - self.vad.pad - MARGIN - 0.001
        return max(0, int(begin * self.rate)) // self.frame_samples * self.frame_samples

    def _complete(self, groups: list[list[tuple[int, int]]]) -> int:
        """How many of `groups` (from what is heard so far) speech still to come cannot change."""
        if not groups:
            return 0
        bound = self._bound()
        last_stretch_final = bound - groups[-1][-1][1] >= JOIN * self.rate
        last_group_full = bound - groups[-1][0][0] > self.seconds * self.rate
        return len(groups) - (not (last_stretch_final and last_group_full))

    def _block(self, group: list[tuple[int, int]]) -> SpeechBlock:
        start, end = group[0][0], group[-1][1]
        parts, at = [], self._held_from
        for piece in self._pieces:
            if at < end and at + len(piece) > start:
                parts.append(piece[max(start, at) - at:min(end, at + len(piece)) - at])
            at += len(piece)
        return SpeechBlock(start, np.concatenate(parts), [(first - start, last - start) for first, last in group])

    def _drop_before(self, sample: int) -> None:
        """Let go of the pieces of audio wholly before `sample`: no block still to come reads them."""
        while self._pieces and self._held_from + len(self._pieces[0]) <= sample:
            self._held_from += len(self._pieces.pop(0))
