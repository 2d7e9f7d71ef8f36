"""The verse-identification benchmark of one model, in the protocol's format.

For every sample of the corpus: decode the audio (any container, to 16 kHz mono), transcribe with
the CTC head (greedy), match the transcript to verses with each matcher, and score. Latency is the
wall time from the audio file path to the predicted verses of the primary matcher, after one
untimed warm-up; batch throughput is measured separately.

A sample that fails, whatever the reason (missing or undecodable audio, an empty clip, out of
memory, a model error, an error inside a matcher), scores 0 and carries its error and its kind;
the run goes on, and each matcher's summary counts the failures by kind.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import platform
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
import torch

from quranft import quran_text
from quranft.audio import load_audio
from quranft.code_versions import matcher_versions
from quranft.corpus import MANIFEST, Sample, load_samples
from quranft.ctc_matcher import CTCMatcher, save_log_probs
from quranft.fileio import write_json
from quranft.progress import progress
from quranft.scoring import FAILED, score_sample, summarize
from quranft.verses import Match, TextMatcher, VerseIndex, default_index, normalize

log = logging.getLogger("quranft")

MATCHERS = ("text", "ctc")
# The warm-up only primes caches and lazy initialisation; if its clips fail (they are scored, and
# fail again, in the run), a few attempts are enough before timing starts anyway.
WARM_UP_ATTEMPTS = 3


def corpus_hash(corpus_dir: Path, samples: list[Sample]) -> str:
    """sha256 over the manifest and every audio file it names (missing ones as their name)."""
    digest = hashlib.sha256((corpus_dir / MANIFEST).read_bytes())
    for sample in samples:
        path = corpus_dir / sample.file
        digest.update(sample.file.encode())
        if path.is_file():
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def expected_text(verses, variant: str = "simple") -> str:
    return " ".join(quran_text.verse(s, a, variant) for s, a in verses)


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def predict(matcher: str, transcript: str, log_probs, index: VerseIndex, text_matcher: TextMatcher,
            ctc_matcher: CTCMatcher | None) -> Match:
    if matcher == "text":
        return text_matcher.match(transcript, index)
    if ctc_matcher is None:
        raise ValueError("the ctc matcher needs the model's tokenizer")
    return ctc_matcher.match(transcript, log_probs, index, text_matcher)


def score_rows(rows: list[dict[str, Any]], matchers: tuple[str, ...], index: VerseIndex,
               text_matcher: TextMatcher, ctc_matcher: CTCMatcher | None,
               log_probs: dict[str, np.ndarray] | None) -> dict[str, Any]:
    """Fill each row's predictions and scores per matcher (rows carry transcript, error and
    error_kind); return the per-matcher summaries, each counting the failed samples by kind.
    Used by the benchmark and by re-scoring."""
    summaries = {}
    for matcher in matchers:
        scores = []
        group_errors = 0
        errors: Counter[str] = Counter()
        for row in rows:
            result: dict[str, Any] = {}
            if row.get("error"):
                score = FAILED
                errors[row["error_kind"]] += 1
            else:
                try:
                    started = time.perf_counter()
                    match = predict(matcher, row["transcript"], (log_probs or {}).get(row["id"]), index,
                                    text_matcher, ctc_matcher)
                    result["seconds"] = round(time.perf_counter() - started, 6)
                    predicted = [list(v) for v in match.verses]
                    score = score_sample([tuple(v) for v in row["expected"]], match.verses)
                    result.update(predicted=predicted, score=round(match.score, 4),
                                  with_basmala=match.with_basmala)
                    if score.sequence_accuracy == 0 and len(match.verses) == 1 and len(row["expected"]) == 1:
                        expected = tuple(row["expected"][0])
                        if match.verses[0] in index.groups.get(expected, ()):
                            result["identical_text_group"] = True
                            group_errors += 1
                except Exception as error:  # one sample's failure must not stop the benchmark
                    score = FAILED
                    result.update(error=f"{type(error).__name__}: {error}", error_kind="matcher")
                    errors["matcher"] += 1
            result.update(score.as_dict())
            row.setdefault("matchers", {})[matcher] = result
            scores.append(score.as_dict())
        summary = summarize(scores, [row["category"] for row in rows])
        summary["errors"] = dict(sorted(errors.items()))
        summary["errors_in_identical_text_groups"] = group_errors
        summaries[matcher] = summary
    return summaries


def transcript_metrics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """WER and CER of the transcripts against the expected verse text, both normalised.
    Samples without a transcript count as empty hypotheses."""
    references = [normalize(expected_text(row["expected"])) for row in rows if row["expected"]]
    hypotheses = [normalize(row.get("transcript") or "") for row in rows if row["expected"]]
    if not references:
        return {"wer": None, "cer": None}
    return {"wer": float(jiwer.wer(references, hypotheses)), "cer": float(jiwer.cer(references, hypotheses)),
            "normalised": True, "reference_variant": "simple"}


@dataclass
class Attempt:
    """One clip from its path to the primary matcher's verses; what failed, if anything."""
    audio: np.ndarray | None = None
    transcript: Any = None  # quranft.transcribe.Transcript
    seconds: float | None = None  # path to verses; None unless every step succeeded
    error: str | None = None
    error_kind: str | None = None


def identify(path: Path, model, primary: str, index: VerseIndex, text_matcher: TextMatcher,
             ctc_matcher: CTCMatcher) -> Attempt:
    """Decode, transcribe and match one clip, timed; a failure is returned, never raised."""
    from quranft.transcribe import check_not_empty, describe, failure_kind, recover, transcribe_samples

    started = time.perf_counter()
    try:
        audio = check_not_empty(load_audio(path), str(path))
        transcript = transcribe_samples(model, [audio], keep_log_probs=True)[0]
    except Exception as error:  # any one clip's failure scores 0; the run goes on
        recover(error)
        return Attempt(error=describe(error), error_kind=failure_kind(error))
    try:
        predict(primary, transcript.text, transcript.log_probs, index, text_matcher, ctc_matcher)
    except Exception as error:  # the transcript stands; score_rows records the matcher's error per matcher
        return Attempt(audio, transcript, error=describe(error), error_kind="matcher")
    return Attempt(audio, transcript, seconds=time.perf_counter() - started)


def warm_up(clips: list[tuple[str, Path]], identify_clip) -> dict[str, Any]:
    """Run the first clip that goes through (untimed); record the ones that failed on the way."""
    failed = []
    for sample_id, path in clips[:WARM_UP_ATTEMPTS]:
        attempt = identify_clip(path)
        if attempt.error is None:
            return {"sample": sample_id, "failed": failed}
        log.warning("warm-up on %s failed (%s); trying the next clip", sample_id, attempt.error)
        failed.append({"id": sample_id, "error": attempt.error, "error_kind": attempt.error_kind})
    return {"sample": None, "failed": failed}


def latency_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean, median, p95 and real-time factor over the samples timed from path to verses."""
    timed = [row for row in rows if row["latency"] is not None]
    latencies = [row["latency"] for row in timed]
    audio_seconds = sum(row["duration"] for row in timed)
    return {"samples": len(latencies),
            "mean": statistics.fmean(latencies) if latencies else None,
            "median": statistics.median(latencies) if latencies else None,
            "p95": percentile(latencies, 95),
            "real_time_factor": sum(latencies) / audio_seconds if audio_seconds else None}


def run_benchmark(model_path: str | Path, corpus_dir: str | Path, out_json: str | Path, model_name: str,
                  matchers: tuple[str, ...] = MATCHERS, primary: str = "ctc", batch_size: int = 8,
                  device: str = "cpu", log_probs_path: str | Path | None = None) -> dict[str, Any]:
    from quranft import nemo_models
    from quranft.train import git_commit, versions
    from quranft.transcribe import transcribe_files, use_ctc_greedy

    model_path, corpus_dir = Path(model_path), Path(corpus_dir)
    samples = load_samples(corpus_dir)
    model = nemo_models.restore(model_path, map_location=device)
    use_ctc_greedy(model)
    index = default_index()
    text_matcher = TextMatcher()
    ctc_matcher = CTCMatcher(model.tokenizer, blank=model.ctc_decoder.num_classes_with_blank - 1)

    def identify_clip(path: Path) -> Attempt:
        return identify(path, model, primary, index, text_matcher, ctc_matcher)

    present = [(s.id, corpus_dir / s.file) for s in samples if (corpus_dir / s.file).is_file()]
    warm = warm_up(present, identify_clip)

    rows, all_log_probs = [], {}
    for sample in progress(samples, total=len(samples), desc=f"benchmark {model_name}", unit="clip"):
        row: dict[str, Any] = {"id": sample.id, "file": sample.file, "category": sample.category,
                               "source": sample.source, "expected": [list(v) for v in sample.expected_verses]}
        attempt = identify_clip(corpus_dir / sample.file)
        if attempt.transcript is None:
            row.update(transcript=None, error=attempt.error, error_kind=attempt.error_kind, latency=None,
                       duration=None)
        else:
            # a matcher's failure is not the sample's: scored (and recorded) per matcher by score_rows
            row.update(transcript=attempt.transcript.text, error=None,
                       latency=round(attempt.seconds, 4) if attempt.seconds is not None else None,
                       duration=round(len(attempt.audio) / 16000, 3))
            all_log_probs[sample.id] = attempt.transcript.log_probs
        rows.append(row)

    summaries = score_rows(rows, matchers, index, text_matcher, ctc_matcher, all_log_probs)

    # Throughput over the clips the model transcribed one by one above, in batches this time.
    transcribed = [row for row in rows if row["transcript"] is not None]
    started = time.perf_counter()
    batched = transcribe_files(model, [str(corpus_dir / row["file"]) for row in transcribed], batch_size=batch_size)
    batch_seconds = time.perf_counter() - started
    audio_seconds = sum(row["duration"] for row in transcribed)

    device_name = torch.cuda.get_device_name(0) if device.startswith("cuda") else (platform.processor() or platform.machine())
    versions_of_matchers = matcher_versions()
    result = {
        "model": {"name": model_name, "file": str(model_path), "bytes": model_path.stat().st_size,
                  "parameters": sum(p.numel() for p in model.parameters())},
        "corpus": {"path": str(corpus_dir), "samples": len(samples), "sha256": corpus_hash(corpus_dir, samples)},
        "decoding": {"head": "ctc", "strategy": "greedy"},
        "matchers": {
            "primary": primary,
            "text": {"name": "text", "version": versions_of_matchers["text"], "settings": text_matcher.settings()},
            "ctc": {"name": "ctc", "version": versions_of_matchers["ctc"], "settings": ctc_matcher.settings()},
        },
        "summary": summaries,
        "transcripts": transcript_metrics(rows),
        "latency": {
            "device": device, "device_name": device_name, "threads": torch.get_num_threads(),
            "matcher": primary, **latency_figures(rows), "warm_up": warm,
            "batch": {"batch_size": batch_size, "clips": len(batched), "seconds": round(batch_seconds, 3),
                      "failed": sum(t.error is not None for t in batched),
                      "clips_per_second": len(batched) / batch_seconds if batch_seconds else None,
                      "audio_seconds_per_second": audio_seconds / batch_seconds if batch_seconds else None},
        },
        "identical_text_groups": {"groups": len(index.identical_groups()),
                                  "verses": sum(len(g) for g in index.identical_groups())},
        "rows": rows,
        "provenance": {"git_commit": git_commit(), "versions": versions(),
                       "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")},
    }
    if log_probs_path is not None:
        save_log_probs(log_probs_path, all_log_probs)
    write_json(out_json, result)
    return result
