"""How far windowed inference (models.windowed) is from running each clip whole: what the window
and context defaults were chosen by.

For each windowing asked for, over a benchmark corpus's clips longer than one window: the largest
and mean absolute difference between the stitched log-probs and the whole clip's, the share of
frames whose best class differs, how many greedy transcripts are identical and the CER of the
windowed ones against the whole ones; and, since what matters is whether windows hear worse, not
only otherwise: the WER of both against the expected verses' text, and the CTC matcher's verses
from both (how many are the same, and the sequence accuracy of each), as the benchmark computes
them. Clips that fit in one window are left out: they run whole, to the bit. (An export runs
whole only what its max_seconds takes: measure with the .nemo, or on clips no longer than that.)

    python -m quranft window-error --model demo/base_model.nemo --corpus demo/benchmark \\
        --window-seconds 4 8 16 --context-seconds 0.5 1 2 3
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jiwer
import numpy as np

from quranft.data.audio import SAMPLE_RATE, load_audio
from quranft.data.benchmark_corpus import Sample, load_samples
from quranft.evaluation.benchmark import transcript_metrics
from quranft.fileio import write_json
from quranft.matching.ctc_matcher import CTCMatcher
from quranft.matching.scoring import predict, score_sample
from quranft.matching.text_matcher import TextMatcher
from quranft.matching.verse_index import default_index
from quranft.models.loading import load_for_ctc
from quranft.models.windowed import Windowing
from quranft.provenance import provenance


@dataclass
class Heard:
    """One clip's greedy transcript, log-probs and the CTC matcher's verses from them."""
    text: str
    log_probs: np.ndarray
    verses: Sequence[tuple[int, int]]


def compare(whole: Heard, windowed: Heard) -> dict[str, Any]:
    """One clip's windowed log-probs against its whole ones."""
    if windowed.log_probs.shape != whole.log_probs.shape:
        raise ValueError(f"stitched log-probs of shape {windowed.log_probs.shape}, the whole clip's "
                         f"{whole.log_probs.shape}")
    difference = np.abs(windowed.log_probs - whole.log_probs)
    return {"largest": float(difference.max()), "mean": float(difference.mean()), "frames": len(whole.log_probs),
            "other_best": int((windowed.log_probs.argmax(-1) != whole.log_probs.argmax(-1)).sum())}


def summarize(windowing: Windowing, whole: dict[str, Heard], windowed: dict[str, Heard],
              samples: dict[str, Sample]) -> dict[str, Any]:
    """One windowing's figures over the clips it windowed (`windowed`)."""
    clips = {name: compare(whole[name], heard) for name, heard in windowed.items()}
    frames = sum(c["frames"] for c in clips.values())
    said = [name for name in windowed if whole[name].text.strip()]

    def wer(heard: dict[str, Heard]) -> float | None:
        return transcript_metrics([{"expected": samples[name].expected_verses, "transcript": heard[name].text}
                                   for name in windowed])["wer"]

    def sequence_accuracy(heard: dict[str, Heard]) -> float | None:
        scores = [score_sample(samples[name].expected_verses, heard[name].verses).sequence_accuracy
                  for name in windowed]
        return sum(scores) / len(scores) if scores else None

    return {"window_seconds": windowing.window_seconds, "context_seconds": windowing.context_seconds,
            "windowed_clips": len(windowed),
            "identical_transcripts": sum(windowed[n].text == whole[n].text for n in windowed),
            "cer_against_whole": float(jiwer.cer([whole[n].text for n in said], [windowed[n].text for n in said]))
            if said else None,
            "largest_log_prob_difference": max((c["largest"] for c in clips.values()), default=None),
            "mean_log_prob_difference": sum(c["mean"] * c["frames"] for c in clips.values()) / frames if frames else None,
            "other_best_class_frames": sum(c["other_best"] for c in clips.values()) / frames if frames else None,
            "wer_whole": wer(whole), "wer_windowed": wer(windowed),
            "same_verses": sum(windowed[n].verses == whole[n].verses for n in windowed),
            "sequence_accuracy_whole": sequence_accuracy(whole), "sequence_accuracy_windowed": sequence_accuracy(windowed),
            "differing_clips": sorted(n for n in windowed if windowed[n].text != whole[n].text)}


def measure_windows(model_path: str | Path, corpus_dir: str | Path, windowings: Sequence[Windowing],
                    out_json: str | Path | None = None, threads: int = 0) -> dict[str, Any]:
    """Each windowing's distance from the whole clips (see the module's docstring); written to
    `out_json` when given."""
    model = load_for_ctc(model_path, threads)
    index, text_matcher = default_index(), TextMatcher()
    ctc_matcher = CTCMatcher(model.tokenizer, blank=model.blank)

    def hear(audio: np.ndarray, windowing: Windowing) -> Heard:
        text, log_probs = model.transcribe(audio, windowing)
        return Heard(text, log_probs, predict("ctc", text, log_probs, index, text_matcher, ctc_matcher).verses)

    corpus_dir = Path(corpus_dir)
    samples = {sample.id: sample for sample in load_samples(corpus_dir)}
    audios = {name: load_audio(corpus_dir / sample.file) for name, sample in samples.items()}
    whole = {name: hear(audio, Windowing(len(audio) / SAMPLE_RATE + 1.0, 0.0)) for name, audio in audios.items()}
    results = []
    for windowing in windowings:
        windowed = {name: hear(audio, windowing) for name, audio in audios.items()
                    if len(windowing.spans(len(audio), model.frame_samples, SAMPLE_RATE)) > 1}
        results.append(summarize(windowing, whole, windowed, samples))
    result = {"model": str(model_path), "corpus": str(corpus_dir), "clips": len(audios), "windowings": results,
              "provenance": provenance()}
    if out_json is not None:
        write_json(out_json, result)
    return result
