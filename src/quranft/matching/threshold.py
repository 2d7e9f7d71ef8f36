"""The confidence threshold under which a prediction is no verse, chosen for one model on the
validation clips (the data stage's validation manifest), never on the benchmark corpus.

Positives: the validation recitations whose verses the model's primary matcher predicts right (the
verses the text matcher finds for the row's own text); a wrong prediction is left out, since
refusing it costs no recall. Negatives: the same clips played backwards (speech-like sound, the
reciter's voice and room, in no language) and a few seconds each of silence, white noise and pink
noise. A clip in which the voice-activity detector hears no speech is refused before any threshold,
and so is one for which the matcher predicts nothing: neither counts for the choice
(matching.rejection.choose_threshold), and the record says how many there were.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from quranft.data.audio import SAMPLE_RATE, load_audio
from quranft.fileio import read_jsonl
from quranft.matching.rejection import Rejection, choose_threshold, prediction_confidence
from quranft.matching.scoring import predict
from quranft.data.vad import VoiceActivity, speech_seconds

log = logging.getLogger("quranft")

DEFAULT_CLIPS = 100
NOISE_SECONDS = 5.0
NOISE_SEED = 20261206


def validation_clips(manifest: str | Path, count: int = DEFAULT_CLIPS) -> list[tuple[str, Path, str]]:
    """(id, audio path, text) of the manifest's first `count` rows (a seeded sample of the split);
    a row without a text (a manifest of clips alone) is no validation clip."""
    manifest = Path(manifest)
    return [(row.get("id", str(number)), manifest.parent / row["audio_filepath"], row["text"])
            for number, row in enumerate(read_jsonl(manifest)[:count]) if row.get("text")]


def synthetic_negatives(seconds: float = NOISE_SECONDS, seed: int = NOISE_SEED) -> dict[str, np.ndarray]:
    """Silence (a faint hiss), white noise and pink noise, `seconds` each, 16 kHz."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    white = rng.standard_normal(n)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    pink = np.fft.irfft(spectrum / np.sqrt(np.maximum(np.arange(len(spectrum)), 1)), n)
    scaled = lambda x, peak: (peak * x / np.abs(x).max()).astype(np.float32)  # noqa: E731
    return {"silence": scaled(white, 1e-4), "white_noise": scaled(white, 0.3), "pink_noise": scaled(pink, 0.3)}


# What a model makes of one clip: the verses its matcher predicts and their confidence.
Judge = Callable[[np.ndarray], tuple[tuple, float | None]]


def clip_judge(transcribe: Callable[[np.ndarray], tuple[str, np.ndarray]], primary: str, index, text_matcher,
               ctc_matcher) -> Judge:
    """A Judge by `transcribe(audio)` -> (transcript text, log-probs) and the primary matcher."""
    def judge(audio: np.ndarray) -> tuple[tuple, float | None]:
        text, log_probs = transcribe(audio)
        match = predict(primary, text, log_probs, index, text_matcher, ctc_matcher)
        return tuple(match.verses), prediction_confidence(log_probs, match.verses, ctc_matcher)
    return judge


def choose_rejection(judge: Judge, clips: list[tuple[str, Path, str]], index, text_matcher,
                     vad: VoiceActivity) -> Rejection:
    """The Rejection whose threshold best separates the positives from the negatives (module docstring)."""
    positives, negatives = [], []
    counts = {"clips": len(clips), "predicted_wrong": 0, "failed": 0, "refused_by_vad": 0, "nothing_predicted": 0}
    minimum = Rejection().min_speech_seconds

    def judged(audio: np.ndarray) -> tuple[tuple, float | None] | None:
        if speech_seconds(vad.speech(audio)) < minimum:
            counts["refused_by_vad"] += 1
            return None
        verses, confidence = judge(audio)
        if not verses or confidence is None:
            counts["nothing_predicted"] += 1
            return None
        return verses, confidence

    for clip_id, path, text in clips:
        try:
            audio = load_audio(path)
            truth = tuple(text_matcher.match(text, index).verses)
            heard, backwards = judged(audio), judged(np.ascontiguousarray(audio[::-1]))
        except Exception as error:  # a validation clip that fails is left out, and counted
            log.warning("threshold: validation clip %s failed (%s: %s)", clip_id, type(error).__name__, error)
            counts["failed"] += 1
            continue
        if heard is not None:
            if heard[0] == truth:
                positives.append(heard[1])
            else:
                counts["predicted_wrong"] += 1
        if backwards is not None:
            negatives.append(backwards[1])
    for name, audio in synthetic_negatives().items():
        heard = judged(audio)
        if heard is not None:
            negatives.append(heard[1])
    chosen = choose_threshold(positives, negatives)
    log.info("confidence threshold %.3f, chosen on %d positives and %d negatives of the validation clips",
             chosen["threshold"], len(positives), len(negatives))
    return Rejection(chosen["threshold"], minimum, {**chosen, **counts, "negatives_made": "each clip backwards; "
                                                    + ", ".join(synthetic_negatives())})
