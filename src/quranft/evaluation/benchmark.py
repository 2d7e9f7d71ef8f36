"""The verse-identification benchmark of one model, in the protocol's format.

For every sample of the corpus: decode the audio (any container, to 16 kHz mono), transcribe with
the CTC head (greedy) of a .nemo, or with an exported graph (an .onnx, on onnxruntime), a clip
longer than a window in windows (models.windowed; the protocol's clips fit in one), match the
transcript to verses with each matcher, and score. Latency is the wall time from the audio file
path to the predicted verses of the primary matcher, after one untimed warm-up; batch throughput
is measured separately.

A hybrid .nemo's RNNT head is judged too (decoders `rnnt`, the default): after the clock stops,
its decoder and joint decode greedily the encoder output the CTC head read, and its transcripts are
scored by the text matcher (the CTC matcher needs CTC log-probs) and by WER/CER, into the JSON's
`decoders.rnnt` block; every figure outside that block is the CTC head's.

What is not recitation is no verse: each clip goes through the voice-activity detector (timed with
the rest), and a prediction is refused when the clip holds too little speech or when its confidence
is under the model's threshold, chosen on the validation clips before the corpus is touched
(matching.threshold); the corpus's negatives (no verse expected) are counted as false accepts
apart from the protocol's means (matching.scoring). The JSON's `rejection` says how the threshold
was chosen.

A sample that fails, whatever the reason (missing or undecodable audio, an empty clip, out of
memory, a model error, an error inside a matcher), scores 0 and carries its error and its kind;
the run goes on, and each matcher's summary counts the failures by kind.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
import torch

from quranft.data.audio import SAMPLE_RATE, load_audio
from quranft.data.benchmark_corpus import CORPUS_MANIFEST, Sample, load_samples
from quranft.evaluation.code_versions import matcher_versions, scorer_version
from quranft.fileio import manifest_hash, read_json, read_jsonl, write_json
from quranft.matching.threshold import DEFAULT_CLIPS, choose_rejection, clip_judge, validation_clips
from quranft.matching.ctc_matcher import CTCMatcher, save_log_probs
from quranft.matching.rejection import Rejection, prediction_confidence
from quranft.matching.scoring import predict, score_rows, summarize_scores
from quranft.matching.text_matcher import TextMatcher
from quranft.matching.verse_index import VerseIndex, default_index
from quranft.models.loading import load_for_ctc
from quranft.models.onnx_model import OnnxModel
from quranft.data.vad import VoiceActivity, speech_seconds
from quranft.models.windowed import Windowing
from quranft.models.transcribe import (
    check_not_empty,
    decode_rnnt,
    error_message,
    failure_kind,
    has_rnnt_head,
    recover,
    model_windowing,
    rnnt_decoding,
    transcribe_files,
    transcribe_samples,
    use_rnnt_greedy,
)
from quranft.progress import progress
from quranft.provenance import cpu_name, provenance
from quranft.quran import tanzil
from quranft.quran.arabic import normalize

log = logging.getLogger("quranft")

MATCHERS = ("text", "ctc")
DECODERS = ("ctc", "rnnt")  # the CTC head always; the RNNT head where the model has one
RNNT_MATCHER = "text"  # the one matcher that needs no CTC log-probs
# The warm-up only primes caches and lazy initialisation; if its clips fail (they are scored, and
# fail again, in the run), a few attempts are enough before timing starts anyway.
WARM_UP_ATTEMPTS = 3


def corpus_hash(corpus_dir: Path, samples: list[Sample]) -> str:
    """sha256 over the manifest and every audio file it names (missing ones as their name)."""
    return manifest_hash(corpus_dir / CORPUS_MANIFEST, corpus_dir, [sample.file for sample in samples])


def expected_text(verses, variant: str = "simple") -> str:
    return " ".join(tanzil.verse(s, a, variant) for s, a in verses)


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


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
    transcript: Any = None  # quranft.models.transcribe.Transcript
    seconds: float | None = None  # path to verses; None unless every step succeeded
    error: str | None = None
    error_kind: str | None = None
    rnnt_seconds: float | None = None  # the RNNT head's decoding of the encoder output, untimed above
    speech_seconds: float | None = None  # what the voice-activity detector heard


def identify(path: Path, model, primary: str, index: VerseIndex, text_matcher: TextMatcher,
             ctc_matcher: CTCMatcher, rnnt: bool = False, windowing: Windowing = Windowing(),
             vad: VoiceActivity | None = None) -> Attempt:
    """Decode, hear for speech (`vad`), transcribe (in `windowing`'s windows if longer than one),
    match one clip and judge the match's confidence, timed; with `rnnt`, then decode the same
    encoder output with the RNNT head (transcript.rnnt), outside the timing. A failure is
    returned, never raised."""
    started = time.perf_counter()
    try:
        audio = check_not_empty(load_audio(path), str(path))
        speech = speech_seconds(vad.speech(audio)) if vad is not None else None
        transcript = transcribe_samples(model, [audio], keep_log_probs=True, keep_encoded=rnnt,
                                        windowing=windowing)[0]
    except Exception as error:  # any one clip's failure scores 0; the run goes on
        recover(error)
        return Attempt(error=error_message(error), error_kind=failure_kind(error))
    try:
        match = predict(primary, transcript.text, transcript.log_probs, index, text_matcher, ctc_matcher)
        prediction_confidence(transcript.log_probs, match.verses, ctc_matcher)  # timed: part of the path
    except Exception as error:  # the transcript stands; score_rows records the matcher's error per matcher
        attempt = Attempt(audio, transcript, error=error_message(error), error_kind="matcher",
                          speech_seconds=speech)
    else:
        attempt = Attempt(audio, transcript, seconds=time.perf_counter() - started, speech_seconds=speech)
    if rnnt:  # after the clock: the latency is the CTC path's alone
        started = time.perf_counter()
        decode_rnnt(model, [transcript])
        attempt.rnnt_seconds = time.perf_counter() - started
    return attempt


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


def rnnt_row(row: dict[str, Any], attempt: Attempt) -> dict[str, Any]:
    """A sample's row of the RNNT head: its transcript, or the error of the clip or of the head."""
    record = {"id": row["id"], "category": row["category"], "expected": row["expected"],
              "speech_seconds": row.get("speech_seconds")}
    if attempt.transcript is None:  # the clip itself failed
        return {**record, "transcript": None, "error": row["error"], "error_kind": row["error_kind"], "seconds": None}
    heard = attempt.transcript.rnnt
    return {**record, "transcript": None if heard.error else heard.text, "error": heard.error,
            "error_kind": heard.error_kind, "seconds": round(attempt.rnnt_seconds, 4)}


def transcribe_corpus(samples: list[Sample], corpus_dir: Path, identify_clip: Callable[[Path], Attempt],
                      model_name: str, rnnt: bool = False
                      ) -> tuple[list[dict[str, Any]], dict[str, np.ndarray], list[dict[str, Any]]]:
    """Every sample identified one by one (timed): the rows score_rows scores, the log-probs, and
    with `rnnt` (where `identify_clip` decodes with the RNNT head too) the RNNT head's rows."""
    rows, log_probs, rnnt_rows = [], {}, []
    for sample in progress(samples, total=len(samples), desc=f"benchmark {model_name}", unit="clip"):
        row: dict[str, Any] = {"id": sample.id, "file": sample.file, "category": sample.category,
                               "source": sample.source, "speaker": sample.raw.get("speaker"),
                               "expected": [list(v) for v in sample.expected_verses]}
        attempt = identify_clip(corpus_dir / sample.file)
        if attempt.transcript is None:
            row.update(transcript=None, error=attempt.error, error_kind=attempt.error_kind, latency=None,
                       duration=None)
        else:
            # a matcher's failure is not the sample's: scored (and recorded) per matcher by score_rows
            row.update(transcript=attempt.transcript.text, error=None,
                       latency=round(attempt.seconds, 4) if attempt.seconds is not None else None,
                       duration=round(len(attempt.audio) / SAMPLE_RATE, 3),
                       speech_seconds=None if attempt.speech_seconds is None else round(attempt.speech_seconds, 3))
            log_probs[sample.id] = attempt.transcript.log_probs
        rows.append(row)
        if rnnt:
            rnnt_rows.append(rnnt_row(row, attempt))
    return rows, log_probs, rnnt_rows


def batch_throughput(model, corpus_dir: Path, rows: list[dict[str, Any]], batch_size: int,
                     windowing: Windowing = Windowing()) -> dict[str, Any]:
    """Throughput over the clips the model transcribed one by one, in batches this time."""
    transcribed = [row for row in rows if row["transcript"] is not None]
    started = time.perf_counter()
    batched = transcribe_files(model, [str(corpus_dir / row["file"]) for row in transcribed], batch_size=batch_size,
                               windowing=windowing)
    seconds = time.perf_counter() - started
    audio_seconds = sum(row["duration"] for row in transcribed)
    return {"batch_size": batch_size, "clips": len(batched), "seconds": round(seconds, 3),
            "failed": sum(t.error is not None for t in batched),
            "clips_per_second": len(batched) / seconds if seconds else None,
            "audio_seconds_per_second": audio_seconds / seconds if seconds else None}


def matcher_records(primary: str, text_matcher: TextMatcher, ctc_matcher: CTCMatcher) -> dict[str, Any]:
    """Each matcher's name, code version and settings, and the primary one."""
    versions = matcher_versions()
    return {"primary": primary,
            **{m.name: {"name": m.name, "version": versions[m.name], "settings": m.settings()}
               for m in (text_matcher, ctc_matcher)}}


def trained_speakers(training_metadata: str | Path | None) -> set[str] | None:
    """The speakers of a trial's training rows (its train manifest's `speaker`), or None when
    they are unknown (the base model, or sources that name no speaker column)."""
    if training_metadata is None:
        return None
    rows = read_jsonl(read_json(training_metadata)["data"]["manifests"]["train"]["path"])
    speakers = {row["speaker"] for row in rows if "speaker" in row}
    return speakers or None


def by_speaker(rows: list[dict[str, Any]], matchers: tuple[str, ...], speakers: set[str] | None) -> dict | None:
    """Each matcher's figures on the clips whose speaker the model was trained on, and on the
    others, when the corpus has clips of both kinds (else None); each row is marked."""
    if speakers is None:
        return None
    for row in rows:
        row["speaker_seen"] = None if row.get("speaker") is None else row["speaker"] in speakers
    groups = {kind: [row for row in rows if row["speaker_seen"] is seen] for kind, seen in (("seen", True),
                                                                                            ("unseen", False))}
    if not all(groups.values()):
        return None
    return {matcher: {kind: summarize_scores([row["matchers"][matcher] for row in group])
                      for kind, group in groups.items()} for matcher in matchers}


def load_model(model_path: Path, device: str):
    """A .nemo restored (its CTC head decoding greedily), or an exported graph on onnxruntime with
    the benchmark's threads; the CTC matcher for its tokenizer and blank; its parameter count."""
    loaded = load_for_ctc(model_path, threads=torch.get_num_threads(), device=device)
    return loaded.model, CTCMatcher(loaded.tokenizer, blank=loaded.blank), loaded.parameters


def model_record(model_path: Path, model_name: str, model, parameters: int) -> dict[str, Any]:
    record = {"name": model_name, "file": str(model_path), "bytes": model_path.stat().st_size,
              "parameters": parameters, "format": "nemo"}
    if isinstance(model, OnnxModel):  # the graph holds the preprocessor, encoder and CTC head only
        record.update(format=f"onnx-{model.format}", runtime="onnxruntime")
    return record


def rnnt_block(decoding: dict[str, Any], rows: list[dict[str, Any]], index: VerseIndex,
               text_matcher: TextMatcher, rejection: Rejection | None = None) -> dict[str, Any]:
    """The RNNT head's part of a benchmark (`decoders.rnnt`): how it decoded, its rows (id,
    category, expected, transcript, error, error_kind, seconds) scored by the text matcher, their
    summary and WER/CER, and the time its decoding took beside the CTC path."""
    # refused for want of speech only: a confidence needs the CTC head's log-probs
    summary = score_rows(rows, (RNNT_MATCHER,), index, text_matcher, None, None, rejection)
    return {"decoding": decoding, "matcher": RNNT_MATCHER, "summary": summary,
            "transcripts": transcript_metrics(rows),
            "decode_seconds": round(sum(row["seconds"] or 0.0 for row in rows), 3), "rows": rows}


def judged_decoders(model, decoders: tuple[str, ...], model_name: str) -> tuple[str, ...]:
    """The asked-for decoders that the model has: the RNNT head only where it is a hybrid .nemo."""
    unknown = sorted(set(decoders) - set(DECODERS))
    if unknown or "ctc" not in decoders:
        raise ValueError(f"decoders must be some of {list(DECODERS)}, ctc among them; got {list(decoders)}")
    if "rnnt" in decoders and not has_rnnt_head(model):
        log.info("%s has no RNNT head: judged by its CTC head only", model_name)
        return ("ctc",)
    return tuple(d for d in DECODERS if d in decoders)


@dataclass
class Corpus:
    """What every model's benchmark on one corpus shares: its samples and content hash, the verse
    index and the text matcher (built once when one process benchmarks several models)."""
    path: Path
    samples: list[Sample]
    sha256: str
    index: VerseIndex
    text_matcher: TextMatcher


def load_corpus(corpus_dir: str | Path) -> Corpus:
    corpus_dir = Path(corpus_dir)
    samples = load_samples(corpus_dir)
    return Corpus(corpus_dir, samples, corpus_hash(corpus_dir, samples), default_index(), TextMatcher())


def model_rejection(model, validation: str | Path | None, clips: int, primary: str, corpus: Corpus,
                    ctc_matcher: CTCMatcher, vad: VoiceActivity, windowing: Windowing) -> Rejection:
    """The model's Rejection: an export's own (chosen on the validation clips when it was exported,
    what an app reads from the file), else its threshold chosen on the validation clips now (the
    default without)."""
    if isinstance(model, OnnxModel) and model.rejection is not None:
        return Rejection.from_dict(model.rejection)
    if validation is None:
        return Rejection(chosen_on={"rule": "the default: no validation manifest given"})

    def transcribe(audio):
        transcript = transcribe_samples(model, [audio], keep_log_probs=True, windowing=windowing)[0]
        return transcript.text, transcript.log_probs

    judge = clip_judge(transcribe, primary, corpus.index, corpus.text_matcher, ctc_matcher)
    return choose_rejection(judge, validation_clips(validation, clips), corpus.index, corpus.text_matcher, vad)


def run_benchmark(model_path: str | Path, corpus_dir: str | Path | Corpus, out_json: str | Path, model_name: str,
                  matchers: tuple[str, ...] = MATCHERS, primary: str = "ctc", batch_size: int | None = 8,
                  device: str = "cpu", log_probs_path: str | Path | None = None,
                  training_metadata: str | Path | None = None,
                  decoders: tuple[str, ...] = DECODERS, windowing: Windowing = Windowing(),
                  validation: str | Path | None = None, threshold_clips: int = DEFAULT_CLIPS) -> dict[str, Any]:
    """Benchmark one model on the corpus (a folder, or a Corpus another model's run loaded); write
    `out_json` (and the log-probs) and return the result. With the trial's `training_metadata`, the
    figures are also split by whether each clip's speaker was in the training data. With `rnnt`
    among the `decoders` and a model that has the head, the RNNT head's figures are in the result's
    `decoders.rnnt`. `batch_size` None skips the batch-throughput pass (`latency.batch` null). A clip
    longer than a window goes in `windowing`'s windows (an export's at most its max_seconds). The
    confidence threshold is chosen on the first `threshold_clips` clips of the `validation` manifest
    (matching.threshold); without one, the default threshold stands, and the JSON says so."""
    model_path = Path(model_path)
    corpus = corpus_dir if isinstance(corpus_dir, Corpus) else load_corpus(corpus_dir)
    samples, index, text_matcher = corpus.samples, corpus.index, corpus.text_matcher
    if model_path.suffix == ".onnx":
        device = "cpu"  # the exports are benchmarked where an app runs them: onnxruntime on the CPU
    model, ctc_matcher, parameters = load_model(model_path, device)
    rnnt = "rnnt" in judged_decoders(model, decoders, model_name)
    if rnnt:
        use_rnnt_greedy(model)
    windowing = model_windowing(model, windowing)

    vad = VoiceActivity(threads=torch.get_num_threads())
    rejection = model_rejection(model, validation, threshold_clips, primary, corpus, ctc_matcher, vad, windowing)

    def identify_clip(path: Path) -> Attempt:
        return identify(path, model, primary, index, text_matcher, ctc_matcher, rnnt, windowing, vad)

    warm = warm_up([(s.id, corpus.path / s.file) for s in samples if (corpus.path / s.file).is_file()], identify_clip)
    rows, log_probs, rnnt_rows = transcribe_corpus(samples, corpus.path, identify_clip, model_name, rnnt)
    summaries = score_rows(rows, matchers, index, text_matcher, ctc_matcher, log_probs, rejection)
    batch = batch_throughput(model, corpus.path, rows, batch_size, windowing) if batch_size else None
    result = {
        "model": model_record(model_path, model_name, model, parameters),
        "corpus": {"path": str(corpus.path), "samples": len(samples), "sha256": corpus.sha256},
        "decoding": {"head": "ctc", "strategy": "greedy", "windows": asdict(windowing)},
        "matchers": matcher_records(primary, text_matcher, ctc_matcher),
        # the hash of all the code that decides this file's figures (code_versions.scorer_version)
        "scorer": {"version": scorer_version()},
        "rejection": {**rejection.as_dict(), "voice_activity": vad.settings()},
        "summary": summaries,
        "by_speaker": by_speaker(rows, matchers, trained_speakers(training_metadata)),
        "transcripts": transcript_metrics(rows),
        **({"decoders": {"rnnt": rnnt_block(rnnt_decoding(model), rnnt_rows, index, text_matcher, rejection)}} if rnnt else {}),
        "latency": {
            "device": device,
            "device_name": torch.cuda.get_device_name(0) if device.startswith("cuda") else cpu_name(),
            "threads": torch.get_num_threads(), "matcher": primary, **latency_figures(rows), "warm_up": warm,
            "batch": batch,
        },
        "identical_text_groups": {"groups": len(index.identical_groups()),
                                  "verses": sum(len(g) for g in index.identical_groups())},
        "rows": rows,
        "provenance": provenance(),
    }
    if log_probs_path is not None:
        save_log_probs(log_probs_path, log_probs)
    write_json(out_json, result)
    return result
