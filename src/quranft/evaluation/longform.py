"""The long-form benchmark: every session of the corpus (data.sessions) heard whole and streamed,
by a .nemo or an export, scored as continuous recitation (evaluation.longform_scoring).

Offline, a session is heard as `identify` hears a recording (models.streaming.hear_recording);
streamed, it arrives in chunks (`chunk_seconds`, 0.5 s by default) as fast as the model keeps up,
and each verse is emitted once confirmed and never taken back (models.streaming.VerseStream). Each
has its real-time factor (processing seconds over audio seconds); streamed, each verse found also
has its emission delay after its true end (median, p90), and the retractions are counted: 0 by
construction, the stream never withdraws a verse. The peak memory is the process's, after the
model's sessions (resource.getrusage). The confidence threshold is the model's own: an export's,
in its metadata; a .nemo's, chosen on the validation clips by its benchmark (`threshold`).
"""

from __future__ import annotations

import resource
import statistics
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from quranft.data.audio import SAMPLE_RATE, load_audio
from quranft.data.sessions import Session, load_sessions
from quranft.data.vad import VoiceActivity
from quranft.evaluation.longform_scoring import Timed, match, score_session, summarize
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


def run_longform(model_path: str | Path, corpus_dir: str | Path, out_json: str | Path | None, model_name: str,
                 threads: int = 0, device: str = "cpu", threshold: float | None = None,
                 chunk_seconds: float = DEFAULT_CHUNK_SECONDS, hold_seconds: float = DEFAULT_HOLD_SECONDS
                 ) -> dict[str, Any]:
    """Benchmark one model (a .nemo or an .onnx) on the corpus's sessions; write `out_json` (if
    given) and return the result."""
    sessions = load_sessions(corpus_dir)
    if not sessions:
        raise ValueError(f"{corpus_dir}: no long-form sessions (sessions.json)")
    model = load_for_ctc(model_path, threads, device)
    threshold = model.min_confidence if model.min_confidence is not None else (threshold or DEFAULT_THRESHOLD)
    segmenter = VerseSegmenter(model.tokenizer, model.blank, frame_seconds=model.frame_seconds,
                               min_confidence=threshold)
    vad = VoiceActivity(threads=max(1, threads))
    rows, audio_seconds = [], 0.0
    took = {"offline": 0.0, "streamed": 0.0}
    all_delays: list[float] = []
    for session in sessions:
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
                                  "delays": [round(d, 3) for d in session_delays], "retractions": 0}})
    result = {
        "model": {"name": model_name, "file": str(model_path), "format": format_name(model_path)},
        "corpus": {"path": str(corpus_dir), "sessions": len(sessions), "audio_seconds": round(audio_seconds, 3)},
        "settings": {"chunk_seconds": chunk_seconds, "hold_seconds": hold_seconds, "threshold": threshold,
                     "voice_activity": vad.settings()},
        "offline": {**summarize([r["offline"] for r in rows]), "real_time_factor": took["offline"] / audio_seconds},
        "streamed": {**summarize([r["streamed"] for r in rows]),
                     "real_time_factor": took["streamed"] / audio_seconds,
                     "emission_delay": {"median": statistics.median(all_delays) if all_delays else None,
                                        "p90": float(np.percentile(all_delays, 90)) if all_delays else None},
                     "retractions": 0},
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "machine": cpu_name(), "threads": threads,
        "sessions": rows,
        "provenance": provenance(),
    }
    if out_json is not None:
        write_json(out_json, result)
    return result


def format_name(model_path: str | Path) -> str:
    """"nemo", or an export's format as its metadata names it (fp32, int8, int4)."""
    path = Path(model_path)
    if path.suffix != ".onnx":
        return "nemo"
    from quranft.models.onnx_model import OnnxModel

    return OnnxModel(path, threads=1).format


def run_longform_formats(model_paths: list[str | Path], corpus_dir: str | Path, out_json: str | Path,
                         model_name: str, **settings) -> dict[str, Any]:
    """Each of a model's files (its .nemo and exports) on the sessions, into one JSON by format."""
    results = {format_name(path): run_longform(path, corpus_dir, None, model_name, **settings) for path in model_paths}
    record = {"model": model_name, "corpus": str(corpus_dir), "formats": results}
    write_json(out_json, record)
    return record
