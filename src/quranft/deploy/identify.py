"""Identify the verses recited in a user's own recordings, of any length, with a .nemo or an
exported .onnx.

For each file (any container quranft.data.audio decodes): where it holds speech (the voice-
activity detector, data.vad), the model's CTC log-probs of each stretch of speech (in windows when
it is longer than one: models.windowed), every frame outside them blank, then the verse
segmenter (matching.segments): each verse recited, in order, with its start and end (seconds) and
its confidence, none under the model's confidence threshold (`threshold_for`). Silence, noise and
speech that is not Quran give no verse. A file that cannot be read or transcribed is reported
with its error, and the others still go through. The verses are written as lines, JSON, a table
or subtitles (deploy.subtitles).

With an .onnx, nothing of NeMo, Lightning or torch is imported. With a .nemo, NeMo is imported and
the model restored (about 10 s more).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from quranft.data.audio import SAMPLE_RATE, read_blocks
from quranft.data.vad import VoiceActivity
from quranft.deploy.subtitles import SUBTITLES, tsv_header, tsv_rows
from quranft.errors import QuranftError
from quranft.fileio import atomic_write_text, read_json
from quranft.matching.rejection import DEFAULT_THRESHOLD
from quranft.matching.segments import VerseSegmenter, VerseSpan, spans_label
from quranft.models.loading import InferenceModel, load_for_ctc
from quranft.models.streaming import hear_recording
from quranft.models.windowed import Windowing
from quranft.quran.references import surah_labels

log = logging.getLogger("quranft")


@dataclass
class Identified:
    file: str
    verses: list[dict] = field(default_factory=list)  # VerseSpan.as_dict, with the surah's name as `surah_name`
    reference: str = ""  # the verses as people write them: "2:255", "2:1-5", "1:7, 2:1"; "none" when none
    transcript: str | None = None
    seconds: float | None = None  # from the file's path to its verses
    duration: float | None = None
    speech_seconds: float | None = None  # what the voice-activity detector heard
    error: str | None = None

    def lines(self) -> list[str]:
        """One line per verse (file, start-end, verse and surah, confidence); one for none or an error."""
        if self.error is not None:
            return [f"{self.file}\terror: {self.error}"]
        if not self.verses:
            return [f"{self.file}\tno verse"]
        return [f"{self.file}\t{v['start']:.2f}-{v['end']:.2f}\t{v['label']} {v['surah_name']}\t"
                f"confidence {v['confidence']:.2f}" for v in self.verses]


def verse_record(span: VerseSpan, duration: float) -> dict:
    """A verse as identify reports it; its end at most the recording's (the segmenter counts whole
    frames, the last one partial)."""
    return span.as_dict() | {"end": min(span.end, duration), "surah_name": surah_labels([span.verse])[0]}


def threshold_for(model_path: str | Path, model: InferenceModel) -> tuple[float, str]:
    """The confidence under which a verse is not reported, and where it comes from: an export's
    own (chosen on validation clips when it was exported), else the threshold the model's benchmark
    chose (benchmark.json beside a .nemo, as the workflow writes them), else the default."""
    if model.min_confidence is not None:
        return model.min_confidence, f"{model_path}'s metadata"
    benchmark = Path(model_path).with_name("benchmark.json")
    if Path(model_path).suffix == ".nemo" and benchmark.is_file():
        rejection = read_json(benchmark).get("rejection")
        if rejection:
            return float(rejection["threshold"]), str(benchmark)
    return DEFAULT_THRESHOLD, "the default"


def verses_heard(model: InferenceModel, segmenter: VerseSegmenter, vad: VoiceActivity, file: str | Path,
                 windowing: Windowing, result: Identified) -> list[VerseSpan]:
    """The verses of one recording, heard as it is decoded (data.audio.read_blocks: what is held
    does not grow with its length); its duration, transcript and speech seconds set on `result`."""
    samples = 0

    def decoded() -> Iterator[np.ndarray]:
        nonlocal samples
        for block in read_blocks(file):
            samples += len(block)
            yield block

    spans, result.transcript, speech = hear_recording(model, segmenter.find, vad, decoded(), windowing)
    if samples == 0:
        raise ValueError("no audio samples")
    result.duration = round(samples / SAMPLE_RATE, 3)
    result.speech_seconds = round(speech, 3)
    return spans


def identify_files(model_path: str | Path, files: Sequence[str | Path], threads: int = 0,
                   windowing: Windowing = Windowing(), min_confidence: float | None = None) -> Iterator[Identified]:
    """Each file's verses, in order, as soon as it is done; a recording longer than a window goes
    through the model in `windowing`'s windows (an export's at most its max_seconds). No verse is
    reported under `min_confidence` (default: threshold_for the model)."""
    model = load_for_ctc(model_path, threads)
    if min_confidence is None:
        min_confidence, source = threshold_for(model_path, model)
        log.info("%s: confidence threshold %.3f (%s)", model_path, min_confidence, source)
    segmenter = VerseSegmenter(model.tokenizer, model.blank, frame_seconds=model.frame_seconds,
                               min_confidence=min_confidence)
    vad = VoiceActivity(threads=max(1, threads))
    for file in files:
        started = time.perf_counter()
        result = Identified(file=str(file))
        try:
            spans = verses_heard(model, segmenter, vad, file, windowing, result)
        except Exception as error:  # one file's failure is reported on its line; the others go on
            result.error = f"{type(error).__name__}: {error}"
            yield result
            continue
        result.verses = [verse_record(span, result.duration) for span in spans]
        result.reference = spans_label(spans)
        result.seconds = round(time.perf_counter() - started, 4)
        yield result


def as_json(result: Identified) -> str:
    return json.dumps(asdict(result), ensure_ascii=False)


def subtitle_paths(files: Sequence[str], out_dir: str | Path, fmt: str) -> list[Path]:
    """Where each file's subtitle goes: <out_dir>/<the file's stem>.<fmt>. Refuses two files that
    would write one subtitle (a/x.mp3 and b/x.m4a), before anything is identified."""
    by_path: dict[Path, str] = {}
    for file in files:
        path = Path(out_dir) / f"{Path(file).stem}.{fmt}"
        if path in by_path:
            raise QuranftError(f"{by_path[path]} and {file} would both write {path}: identify them apart")
        by_path[path] = file
    return list(by_path)


def write_result(result: Identified, fmt: str, out: TextIO, subtitle: Path | None = None) -> None:
    """One file's verses in `fmt` to `out`, or its subtitle (srt, vtt) to the path `subtitle`
    (atomically). In text and jsonl a failed file's error is one of the results; in the others its
    error line goes to stderr, and nothing is written for it."""
    if fmt == "text":
        text = "\n".join(result.lines()) + "\n"
    elif fmt == "jsonl":
        text = as_json(result) + "\n"
    elif result.error is not None:
        print(*result.lines(), file=sys.stderr, flush=True)
        return
    elif fmt == "tsv":
        text = tsv_rows(result.file, result.verses)
    elif subtitle is not None:
        atomic_write_text(subtitle, SUBTITLES[fmt](result.verses))
        return
    else:
        text = SUBTITLES[fmt](result.verses)
    out.write(text)
    out.flush()


def run(model_path: str | Path, files: Sequence[str], threads: int, fmt: str, out: TextIO,
        windowing: Windowing = Windowing(), out_dir: str | Path | None = None,
        min_confidence: float | None = None) -> int:
    """Write each file's verses in `fmt` as soon as it is done: its lines (Identified.lines), a JSON
    object a file (jsonl) or a table (tsv, a header row first) to `out`; a subtitle (srt, vtt) to
    <out_dir>/<stem>.<fmt> each, or, for a single file and no `out_dir`, to `out`. Returns the
    number of files that failed. Everything else (NeMo logs to stdout) goes to stderr, so that
    `out` holds only the results."""
    if out_dir is not None and fmt not in SUBTITLES:
        raise QuranftError(f"--out-dir is for the subtitle formats ({', '.join(SUBTITLES)}), not {fmt}")
    if fmt in SUBTITLES and out_dir is None and len(files) != 1:
        raise QuranftError(f"{fmt} is a subtitle a file: give --out-dir for {len(files)} files")
    subtitles = [None] * len(files) if out_dir is None else subtitle_paths(files, out_dir, fmt)
    if out_dir is not None:
        try:  # before the model loads
            Path(out_dir).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise QuranftError(f"--out-dir {out_dir}: {error.strerror}") from None
    failed = 0
    with contextlib.redirect_stdout(sys.stderr):
        if fmt == "tsv":
            out.write(tsv_header())
        for result, subtitle in zip(identify_files(model_path, files, threads, windowing, min_confidence), subtitles):
            failed += result.error is not None
            write_result(result, fmt, out, subtitle)
    return failed
