"""Verses emitted as a recitation arrives, as the app hears a microphone: never taken back.

The audio comes in chunks (0.5 s by default). The voice-activity detector follows it as it comes
(data.vad.SpeechTracker: its state carried, the same figures as on the whole). After a chunk in
which the reciter has been silent `hold_seconds` after speech not yet heard so (only then can a
verse be confirmed), and at least every 2 s while speech goes on, the stretch since the end of the
last verse emitted (at most `max_seconds`) is heard again as
`identify` hears a recording (each stretch of speech on its own: models.loading.speech_log_probs)
and the verse segmenter (`find`, matching.segments, given by the caller) reads its verses, told
the last verse emitted (`after`: the verse that follows it is looked for too, as the app expects
the reciter to go on). A verse
is emitted once it is confirmed: it ends at least `hold_seconds` before the audio received so far,
the reciter paused within 0.5 s after it (a fragment read while a verse is still being recited is
followed by speech), and it starts after the last verse emitted; a verse that runs into the next
without a pause is confirmed when a later one is, so that the emitted sequence is in order. Emitted verses are
never withdrawn or replaced: a stream makes no retractions by construction, and the delay a verse
is emitted after its end is the price (at least `hold_seconds`). When the recording ends
(`finish`), what remains is confirmed.

Re-hearing the stretch since the last verse after each chunk is what the app does with its
rolling window; unlike its greedy prefix decoding, a verse is only named when the segmenter has
heard it whole and some of what follows it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import numpy as np

from quranft.data.speech_blocks import SpeechBlock, SpeechBlocks
from quranft.data.vad import MIN_SPEECH_SECONDS, SpeechTracker, VoiceActivity, speech_seconds, speech_stretches
from quranft.models.loading import InferenceModel, speech_log_probs
from quranft.models.windowed import Windowing

DEFAULT_CHUNK_SECONDS = 0.5
DEFAULT_HOLD_SECONDS = 1.0
DEFAULT_MAX_SECONDS = 40.0  # the stretch re-heard, at most
REHEAR_SECONDS = 2.0  # the stretch is heard again at least this often while speech goes on


@dataclass(frozen=True)
class Emitted:
    """A verse emitted by the stream, its times in seconds of the recording."""
    surah: int
    ayah: int
    start: float
    end: float
    confidence: float
    at: float  # seconds of audio received when it was emitted

    def as_dict(self) -> dict:
        return {"surah": self.surah, "ayah": self.ayah, "start": self.start, "end": self.end,
                "confidence": self.confidence, "emitted_at": self.at}


def on_speech(span, speech: list[tuple[float, float]]):
    """The span with its edges moved onto the speech it covers: a start in a pause moves to where
    the next speech begins, an end in a pause back to where the last speech ended (intervals in the
    span's seconds). A stretch is heard with a margin of non-speech on each side, and a model may
    emit a verse's first and last tokens anywhere in it (the demo's models do so at the stretch's
    very edges, 0.3 to 0.4 s outside the speech): the detector, not the model, tells when the
    reciting starts and stops. A span that covers no speech is kept as it is."""
    inside = [(first, last) for first, last in speech if first < span.end and last > span.start]
    if not inside:
        return span
    start = span.start if inside[0][0] <= span.start else inside[0][0]
    end = span.end if inside[-1][1] >= span.end else inside[-1][1]
    return replace(span, start=round(start, 6), end=round(end, 6))


def hear_recording(model: InferenceModel, find: Callable[[np.ndarray], list], vad: VoiceActivity,
                   audio: np.ndarray | Iterable[np.ndarray], windowing: Windowing = Windowing(),
                   min_speech: float = MIN_SPEECH_SECONDS) -> tuple[list, str, float]:
    """A whole recording as `identify` hears it: (the verses `find` reads, with the recording's
    times, the transcript, the seconds of speech). `audio` is the recording, or its pieces as they
    are decoded (data.audio.read_blocks). Each stretch of speech is heard on its own
    (speech_log_probs), every other frame blank, block by block as each block of stretches is
    complete (data.speech_blocks), so that only one block's audio and log-probs are held; less
    speech than `min_speech` is no recitation."""
    rate = model.sample_rate
    heard = SpeechBlocks(vad, model.frame_samples, rate)
    spans, texts = [], []

    def hear(ready: list[SpeechBlock]) -> None:
        for block in ready:
            log_probs = speech_log_probs(model, block.audio, block.stretches, windowing)
            offset = block.start / rate
            spans.extend(on_speech(replace(span, start=round(span.start + offset, 6), end=round(span.end + offset, 6)),
                                   heard.speech) for span in find(log_probs))
            texts.append(model.text(log_probs))

    for piece in [audio] if isinstance(audio, np.ndarray) else audio:
        hear(heard.add(piece))
    hear(heard.finish())
    seconds = speech_seconds(heard.speech)
    if seconds < min_speech:
        return [], "", seconds
    return spans, " ".join(text for text in texts if text), seconds


class VerseStream:
    """Feed it audio as it arrives (`feed`), then `finish`; each returns the verses emitted then."""

    def __init__(self, model: InferenceModel, find: Callable[..., list], vad: VoiceActivity,
                 hold_seconds: float = DEFAULT_HOLD_SECONDS, max_seconds: float = DEFAULT_MAX_SECONDS,
                 windowing: Windowing = Windowing()):
        self.model, self.find, self.windowing = model, find, windowing
        self.hold, self.max_seconds = hold_seconds, max_seconds
        self.tracker = SpeechTracker(vad)
        self.audio = np.zeros(0, np.float32)
        self.emitted: list[Emitted] = []
        self.heard_until = 0.0  # the end of the last verse emitted
        self._paused_until = 0.0  # the end of the last stretch of speech heard as paused
        self._heard_at = 0.0  # the seconds received when the stretch was last heard

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.model.sample_rate

    def feed(self, samples: np.ndarray) -> list[Emitted]:
        self.audio = np.concatenate([self.audio, np.asarray(samples, np.float32).reshape(-1)])
        self.tracker.add(samples)
        return self._emit(hold=self.hold)

    def finish(self) -> list[Emitted]:
        """The recording ended: every verse heard is confirmed."""
        return self._emit(hold=0.0)

    def _emit(self, hold: float) -> list[Emitted]:
        rate, frame = self.model.sample_rate, self.model.frame_samples
        now = self.seconds
        first = int(max(self.heard_until, now - self.max_seconds) * rate) // frame * frame
        start = first / rate
        speech = self.tracker.speech(start, now)
        if not speech:
            return []
        # A verse is confirmed once the reciter has paused `hold` after it: hear again when speech
        # the last hearing did not see pause has paused so, and at least every REHEAR_SECONDS (a
        # verse the segmenter could not yet read whole), not after every chunk.
        paused = [start + end for _, end in speech if start + end <= now - hold]
        fresh = bool(paused) and paused[-1] > self._paused_until
        if hold and not fresh and now - self._heard_at < REHEAR_SECONDS:
            return []
        self._paused_until = max(self._paused_until, paused[-1] if paused else 0.0)
        self._heard_at = now
        region = self.audio[first:]
        log_probs = speech_log_probs(self.model, region, speech_stretches(speech, len(region), frame, rate),
                                     self.windowing)
        last = (self.emitted[-1].surah, self.emitted[-1].ayah) if self.emitted else None
        spans = [span for span in (on_speech(span, speech) for span in self.find(log_probs, after=last))
                 if start + span.start >= self.heard_until]
        # Confirmed: up to the last verse that ends `hold` before now and after which the reciter
        # paused (a verse's fragment read while it is still being recited is followed by speech).
        closed = [i for i, span in enumerate(spans)
                  if start + span.end <= now - hold and (hold == 0 or paused_after(speech, span.end, now - start))]
        new = [Emitted(span.surah, span.ayah, round(start + span.start, 3), round(min(start + span.end, now), 3),
                       span.confidence, round(now, 3)) for span in spans[:closed[-1] + 1]] if closed else []
        if new:
            self.heard_until = new[-1].end
        self.emitted += new
        return new


PAUSE_WITHIN = 0.5  # seconds after a verse's end within which its reciter's pause must begin


def paused_after(speech: list[tuple[float, float]], end: float, now: float) -> bool:
    """Whether the speech heard (intervals, seconds) pauses within PAUSE_WITHIN after `end`, the
    pause begun before `now`."""
    for first, last in speech:
        if first <= end + PAUSE_WITHIN and last >= end:  # the stretch the verse ends in
            return last <= end + PAUSE_WITHIN and last < now
    return True  # the verse ends in no stretch of speech: a pause already


def stream_chunks(audio: np.ndarray, rate: int, chunk_seconds: float = DEFAULT_CHUNK_SECONDS) -> Iterable[np.ndarray]:
    """The recording in chunks as it would arrive."""
    step = max(1, int(round(chunk_seconds * rate)))
    for start in range(0, len(audio), step):
        yield audio[start:start + step]


def stream_recording(stream: VerseStream, audio: np.ndarray, chunk_seconds: float = DEFAULT_CHUNK_SECONDS
                     ) -> list[Emitted]:
    """Every verse a stream emits as the recording arrives in chunks, then at its end."""
    for chunk in stream_chunks(audio, stream.model.sample_rate, chunk_seconds):
        stream.feed(chunk)
    stream.finish()
    return stream.emitted
