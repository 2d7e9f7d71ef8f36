"""The long-form benchmark: every session of the corpus (data.sessions) heard whole and streamed,
by a .nemo or an export, scored as continuous recitation (evaluation.longform_scoring).

Offline, a session is heard as `identify` hears a recording (models.streaming.hear_recording);
streamed, it arrives in chunks (`chunk_seconds`, 0.5 s by default) as fast as the model keeps up,
and each verse is emitted once confirmed and never taken back (models.streaming.VerseStream). Each
has its real-time factor (processing seconds over audio seconds); streamed, each verse found also
has its emission delay after its true end (median, p90), and the retractions are counted from the
emissions (longform_scoring.retractions: a verse a later emission overlaps); this stream makes
none by construction, and the count says so of every run rather than assuming it. The peak memory is the process's, after the
model's sessions (resource.getrusage). The confidence threshold is the model's own: an export's,
in its metadata; a .nemo's, chosen on the validation clips by its benchmark (`threshold`).
"""

from __future__ import annotations

import hashlib
import resource
import statistics
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from quranft.data.audio import SAMPLE_RATE, load_audio
from quranft.data.sessions import SESSIONS_MANIFEST, Session, SessionsError, load_sessions
from quranft.evaluation.code_versions import LONGFORM, scorer_version
from quranft.data.vad import VoiceActivity
from quranft.evaluation.longform_scoring import Timed, match, retractions, score_session, summarize
from quranft.fileio import write_json
from quranft.matching.rejection import DEFAULT_THRESHOLD
from quranft.matching.segments import VerseSegmenter
from quranft.models.loading import InferenceModel, load_for_ctc
from quranft.models.streaming import (DEFAULT_CHUNK_SECONDS, DEFAULT_HOLD_SECONDS, VerseStream, hear_recording,
                                      stream_recording)
from quranft.models.windowed import Windowing
from quranft.provenance import cpu_name, provenance


def truth_of(session: Session) -> list[Timed]:
    return [Timed(surah, ayah, start, end) for surah, ayah, start, end in session.verses]


def offline(model: InferenceModel, segmenter: VerseSegmenter, vad: VoiceActivity, audio: np.ndarray
            ) -> tuple[list[Timed], float]:
    started = time.perf_counter()
    spans, _, _ = hear_recording(model, segmenter.find, vad, audio, Windowing())
    seconds = time.perf_counter() - started
    return [Timed(s.surah, s.ayah, s.start, s.end) for s in spans], seconds


def streamed(model: InferenceModel, segmenter: VerseSegmenter, vad: VoiceActivity, audio: np.ndarray,
             chunk_seconds: float, hold_seconds: float) -> tuple[list[Timed], list[float], float]:
    """The verses the stream emitted, when each was emitted (seconds of audio received), and the
    processing seconds."""
    started = time.perf_counter()
    emitted = stream_recording(VerseStream(model, segmenter.find, vad, hold_seconds=hold_seconds), audio,
                               chunk_seconds)
    seconds = time.perf_counter() - started
    return [Timed(e.surah, e.ayah, e.start, e.end) for e in emitted], [e.at for e in emitted], seconds


def delays(truth: list[Timed], found: list[Timed], emitted_at: list[float]) -> list[float]:
    """Each found verse's emission after the end of the recited verse it matches."""
    return [emitted_at[j] - truth[i].end for i, j in match(truth, found)]


def judged_sessions(corpus_dir: str | Path, limit: int | None = None) -> list[Session]:
    """The corpus's sessions, the first `limit` of them when given (longform.sessions)."""
    sessions = load_sessions(corpus_dir)
    if not sessions:
        raise SessionsError(f"{Path(corpus_dir) / SESSIONS_MANIFEST}: no long-form sessions")
    return sessions[:limit] if limit else sessions


def corpus_record(corpus_dir: str | Path, sessions: list[Session]) -> dict[str, Any]:
    """Which sessions were judged: the manifest's content hash and the sessions' ids (the
    leaderboard compares only results on the same ones)."""
    manifest = Path(corpus_dir) / SESSIONS_MANIFEST
    return {"path": str(corpus_dir), "sha256": hashlib.sha256(manifest.read_bytes()).hexdigest(),
            "sessions": len(sessions), "ids": [session.id for session in sessions]}


def run_longform(model_path: str | Path, corpus_dir: str | Path, out_json: str | Path | None, model_name: str,
                 threads: int = 0, device: str = "cpu", threshold: float | None = None,
                 chunk_seconds: float = DEFAULT_CHUNK_SECONDS, hold_seconds: float = DEFAULT_HOLD_SECONDS,
                 sessions: int | None = None) -> dict[str, Any]:
    """Benchmark one model (a .nemo or an .onnx) on the corpus's sessions (the first `sessions`
    when given); write `out_json` (if given) and return the result."""
    judged = judged_sessions(corpus_dir, sessions)
    model = load_for_ctc(model_path, threads, device)
    threshold = model.min_confidence if model.min_confidence is not None else (threshold or DEFAULT_THRESHOLD)
    segmenter = VerseSegmenter(model.tokenizer, model.blank, frame_seconds=model.frame_seconds,
                               min_confidence=threshold)
    vad = VoiceActivity(threads=max(1, threads))
    rows, audio_seconds = [], 0.0
    took = {"offline": 0.0, "streamed": 0.0}
    all_delays: list[float] = []
    for session in judged:
        audio = load_audio(Path(corpus_dir) / session.file)
        audio_seconds += len(audio) / SAMPLE_RATE
        truth = truth_of(session)
        found, seconds = offline(model, segmenter, vad, audio)
        took["offline"] += seconds
        emitted, at, stream_seconds = streamed(model, segmenter, vad, audio, chunk_seconds, hold_seconds)
        took["streamed"] += stream_seconds
        session_delays = delays(truth, emitted, at)
        all_delays += session_delays
        rows.append({"id": session.id, "seconds": session.seconds,
                     "offline": {**score_session(truth, found, session.seconds), "verses": [asdict(v) for v in found]},
                     "streamed": {**score_session(truth, emitted, session.seconds),
                                  "verses": [asdict(v) | {"emitted_at": t} for v, t in zip(emitted, at)],
                                  "delays": [round(d, 3) for d in session_delays],
                                  "retractions": retractions(emitted, at)}})
    result = {
        "model": {"name": model_name, "file": str(model_path), "format": format_of(model, model_path)},
        "corpus": {**corpus_record(corpus_dir, judged), "audio_seconds": round(audio_seconds, 3)},
        # the hash of all the code that decides these figures (code_versions.scorer_version)
        "scorer": {"version": scorer_version(LONGFORM)},
        "settings": {"chunk_seconds": chunk_seconds, "hold_seconds": hold_seconds, "threshold": threshold,
                     "voice_activity": vad.settings()},
        "offline": {**summarize([r["offline"] for r in rows]), "real_time_factor": took["offline"] / audio_seconds},
        "streamed": {**summarize([r["streamed"] for r in rows]),
                     "real_time_factor": took["streamed"] / audio_seconds,
                     "emission_delay": {"median": statistics.median(all_delays) if all_delays else None,
                                        "p90": float(np.percentile(all_delays, 90)) if all_delays else None},
                     "retractions": sum(row["streamed"]["retractions"] for row in rows)},
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "machine": cpu_name(), "threads": threads,
        "sessions": rows,
        "provenance": provenance(),
    }
    if out_json is not None:
        write_json(out_json, result)
    return result


def format_of(model: InferenceModel, model_path: str | Path) -> str:
    """"nemo", or an export's format as its metadata names it (fp32, int8, int4)."""
    return model.model.format if Path(model_path).suffix == ".onnx" else "nemo"


def run_longform_formats(model_paths: list[str | Path], corpus_dir: str | Path, out_json: str | Path,
                         model_name: str, **settings) -> dict[str, Any]:
    """Each of a model's files (its .nemo and exports) on the sessions, into one JSON by format."""
    results: dict[str, dict[str, Any]] = {}
    for path in model_paths:
        result = run_longform(path, corpus_dir, None, model_name, **settings)
        fmt = result["model"]["format"]  # read from the model run (an export's metadata), not opened again
        if fmt in results:
            raise ValueError(f"{path}: a second {fmt} file of {model_name}; give each format once")
        results[fmt] = result
    record = {"model": model_name, "corpus": str(corpus_dir), "formats": results}
    write_json(out_json, record)
    return record
