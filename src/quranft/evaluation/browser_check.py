"""The browser check: each export run where the app runs it, onnxruntime-web (WASM, one thread) in
headless Chromium, and scored in Python by the benchmark's own code path and matchers.

For each format (one browser, one page, one model loaded after the other): the model's load time in
the page; every benchmark clip decoded in Python (16 kHz float32), handed to the page, its log-probs
returned (models.browser.BrowserModel) and scored as the benchmark scores an export's
(evaluation.benchmark's identify, transcribe_corpus and score_rows: the same voice-activity
verdict, the export's own confidence threshold, the same matchers), so that SeqAcc, recall and
precision are the browser's. Beside them, the same clips by onnxruntime in Python: for fp32 the
greedy transcripts, which must all be identical, and the largest log-prob difference, which must
be at most FP32_MAX_DIFFERENCE (else the check fails and writes nothing); for the quantized formats the share
of identical transcripts (their integer kernels differ between WASM and native x86). Latency is
the graph's run time in the page per clip (median, p90), warm: after the benchmark's one warm-up
clip. Each sample's primary-matcher SeqAcc hit and transcript are kept, so that a paired
comparison with the .nemo's benchmark can be made on the browser's figures.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from quranft.errors import QuranftError
from quranft.evaluation.benchmark import (
    MATCHERS,
    Attempt,
    identify,
    load_corpus,
    matcher_records,
    model_rejection,
    percentile,
    transcribe_corpus,
    warm_up,
)
from quranft.evaluation.code_versions import scorer_version
from quranft.data.vad import VoiceActivity
from quranft.fileio import sha256_file, write_json
from quranft.matching.ctc_matcher import CTCMatcher
from quranft.matching.scoring import score_rows
from quranft.matching.threshold import DEFAULT_CLIPS
from quranft.models.browser import WEB_DIR, Browser, BrowserModel, PageRun
from quranft.models.transcribe import model_windowing
from quranft.models.windowed import Windowing
from quranft.provenance import cpu_name, provenance

log = logging.getLogger("quranft")

# The largest log-prob difference allowed between the browser's fp32 graph and Python's. In float32
# the front end's log and per-feature normalisation were where WASM's kernels and native x86's part
# (up to 1.2e-3 on the demo base's 95 benchmark clips, 10 over 1e-4); the graph computes them in
# float64 (deploy.graph.log_in_float64), and the browser is within 3.9e-5 of Python on all 95.
FP32_MAX_DIFFERENCE = 1e-4


class BrowserCheckError(QuranftError, ValueError):
    """An export that the browser runs otherwise than Python does (fp32), or inputs that do not fit."""


@dataclass
class ClipRun:
    """One clip in the page: the graph's calls (a call a window), and against onnxruntime in Python
    on the same audio and windows, its greedy transcript and the largest log-prob difference."""
    runs: list[PageRun]
    python_text: str | None = None
    difference: float | None = None

    @property
    def page_text(self) -> str | None:
        """The page's own greedy decoding, where it saw the clip whole (a window's is not the clip's)."""
        return self.runs[0].text if len(self.runs) == 1 else None


def _parity(rows: list[dict[str, Any]], clips: dict[str, ClipRun]) -> dict[str, Any]:
    """The browser's log-probs and transcripts against onnxruntime's in Python, over the clips."""
    compared = [(row, clips[row["id"]]) for row in rows if clips[row["id"]].python_text is not None]
    identical = sum(clip.python_text == row["transcript"] for row, clip in compared)
    # over FP32_MAX_DIFFERENCE, or another greedy transcript: what fails an fp32 graph
    differing = [{"id": row["id"], "difference": clip.difference} for row, clip in compared
                 if clip.difference > FP32_MAX_DIFFERENCE or clip.python_text != row["transcript"]]
    whole = [(row, clip.page_text) for row, clip in compared if clip.page_text is not None]
    return {"clips": len(compared), "identical_transcripts": identical,
            "identical_share": identical / len(compared) if compared else None,
            "max_abs_log_prob_difference": max((clip.difference for _, clip in compared), default=None),
            "clips_differing": differing,
            "page_decoding": {"clips": len(whole), "identical": sum(text == row["transcript"] for row, text in whole)}}


def _latency(rows: list[dict[str, Any]], clips: dict[str, ClipRun], warm: dict[str, Any]) -> dict[str, Any]:
    """The graph's run time in the page per clip (its windows' together), over the clips it ran."""
    timed = [(sum(run.ms for run in clips[row["id"]].runs), row["duration"]) for row in rows
             if row["transcript"] is not None]
    latencies = [ms for ms, _ in timed]
    audio_seconds = sum(seconds for _, seconds in timed)
    return {"what": "the graph's run in the page per clip (session.run), warm",
            "clips": len(latencies), "median_ms": percentile(latencies, 50), "p90_ms": percentile(latencies, 90),
            "mean_ms": float(np.mean(latencies)) if latencies else None, "audio_seconds": round(audio_seconds, 3),
            "real_time_factor": sum(latencies) / 1000 / audio_seconds if audio_seconds else None, "warm_up": warm}


def check_format(model: BrowserModel, corpus, primary: str, matchers: tuple[str, ...], validation, threshold_clips,
                 vad: VoiceActivity, windowing: Windowing) -> dict[str, Any]:
    """One export in the page: loaded, every clip run and scored, compared with Python's."""
    load = model.load()
    ctc_matcher = CTCMatcher(model.tokenizer, blank=model.blank)
    windowing = model_windowing(model, windowing)
    rejection = model_rejection(model, validation, threshold_clips, primary, corpus, ctc_matcher, vad, windowing)
    clips: dict[Path, ClipRun] = {}

    def identify_clip(path: Path) -> Attempt:
        before = len(model.runs)
        attempt = identify(path, model, primary, corpus.index, corpus.text_matcher, ctc_matcher, False, windowing, vad)
        clips[path] = clip = ClipRun(model.runs[before:])
        if attempt.transcript is not None:
            browser = attempt.transcript.log_probs
            reference = model.python_log_probs(attempt.audio, windowing)
            clip.python_text = model.text(reference)
            clip.difference = (float(np.abs(browser - reference).max()) if browser.shape == reference.shape
                               else float("inf"))
        return attempt

    warm = warm_up([(s.id, corpus.path / s.file) for s in corpus.samples if (corpus.path / s.file).is_file()],
                   identify_clip)
    rows, log_probs, _ = transcribe_corpus(corpus.samples, corpus.path, identify_clip, f"browser {model.format}")
    summaries = score_rows(rows, matchers, corpus.index, corpus.text_matcher, ctc_matcher, log_probs, rejection)
    by_id = {row["id"]: clips[corpus.path / row["file"]] for row in rows}
    return {
        "file": model.path.name, "bytes": model.path.stat().st_size, "sha256": sha256_file(model.path),
        "load": {"ms": round(load["loadMs"], 1), "source": load["source"]},
        "rejection": rejection.as_dict(),
        "summary": summaries,
        "parity": _parity(rows, by_id),
        "latency": _latency(rows, by_id, warm),
        "rows": {row["id"]: {"sequence_accuracy": row["matchers"][primary]["sequence_accuracy"],
                             "transcript": row["transcript"], "python_transcript": by_id[row["id"]].python_text,
                             "seconds": row["duration"], "error": row["error"]} for row in rows},
    }


def run_browser_check(models: list[str | Path], corpus_dir: str | Path, out_json: str | Path, model_name: str,
                      matchers: tuple[str, ...] = MATCHERS, primary: str = "ctc",
                      validation: str | Path | None = None, threshold_clips: int = DEFAULT_CLIPS,
                      web_dir: str | Path = WEB_DIR, windowing: Windowing = Windowing(),
                      browser: Browser | None = None) -> dict[str, Any]:
    """Run each exported file of `models` (one export folder) in the browser (a new one, or
    `browser`, open on that folder) on the benchmark corpus; write `out_json` atomically and return
    it. Raises BrowserCheckError, writing nothing, when a greedy transcript of the fp32 graph in the
    browser differs from Python's or its log-probs are more than FP32_MAX_DIFFERENCE from them."""
    paths = [Path(model) for model in models]
    for path in paths:
        if not path.is_file():
            raise BrowserCheckError(f"{path}: no such file")
    folders = {path.parent.resolve() for path in paths}
    if len(folders) != 1:
        raise BrowserCheckError(f"the exported files must be of one export folder; got {sorted(map(str, folders))}")
    folder = folders.pop()
    if browser is not None and (browser.models_dir is None or browser.models_dir.resolve() != folder):
        raise BrowserCheckError(f"the browser serves {browser.models_dir}, not the exports' folder {folder}")
    corpus = load_corpus(corpus_dir)
    vad = VoiceActivity(threads=torch.get_num_threads())
    started = time.perf_counter()
    formats = {}
    with nullcontext(browser) if browser is not None else Browser(folder, web_dir) as browser:
        versions = browser.versions()
        for path in paths:
            model = BrowserModel(path, browser)
            formats[model.format] = result = check_format(model, corpus, primary, matchers, validation, threshold_clips,
                                                          vad, windowing)
            figures, parity = result["summary"][primary], result["parity"]
            log.info("%s %s in the browser: SeqAcc %.3f, recall %.3f, precision %.3f (%s matcher); %d/%d transcripts "
                     "as Python's, largest log-prob difference %.2g; loaded in %.0f ms, %.0f ms median a clip (p90 %.0f)",
                     model_name, model.format, figures["sequence_accuracy"], figures["recall"], figures["precision"],
                     primary, parity["identical_transcripts"], parity["clips"], parity["max_abs_log_prob_difference"],
                     result["load"]["ms"], result["latency"]["median_ms"] or 0, result["latency"]["p90_ms"] or 0)
    fp32 = formats.get("fp32")
    if fp32 is not None and fp32["parity"]["clips_differing"]:
        differing = fp32["parity"]["clips_differing"]
        raise BrowserCheckError(
            f"{fp32['file']}: in the browser, {len(differing)} clips' greedy transcripts differ from onnxruntime's in "
            f"Python or their log-probs by more than {FP32_MAX_DIFFERENCE:g} (largest difference "
            f"{fp32['parity']['max_abs_log_prob_difference']:.3g}): "
            + ", ".join(f"{clip['id']} ({clip['difference']:.3g})" for clip in differing[:10]))
    result = {
        "model": model_name,
        "corpus": {"path": str(corpus.path), "samples": len(corpus.samples), "sha256": corpus.sha256},
        "runtime": {"runtime": "onnxruntime-web", "backend": "wasm", "threads": 1, **versions, "cpu": cpu_name()},
        "matchers": matcher_records(primary, corpus.text_matcher, CTCMatcher(model.tokenizer, blank=model.blank)),
        "scorer": {"version": scorer_version()},
        "fp32_max_difference": FP32_MAX_DIFFERENCE,
        "formats": formats,
        "seconds": round(time.perf_counter() - started, 1),
        "provenance": provenance(),
    }
    write_json(out_json, result)
    return result
