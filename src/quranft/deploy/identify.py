"""Identify the verses recited in a user's own recordings, with a .nemo or an exported .onnx.

For each file (any container quranft.data.audio decodes): the predicted verses as `surah:ayah` or
`surah:first-last` (with the surah's name), the matcher's score and the transcript. A file that
cannot be read or transcribed is reported with its error, and the others still go through.

With an .onnx, nothing of NeMo, Lightning or torch is imported by the text matcher's path; the CTC
matcher imports torch (its CTC loss) when it first matches. With a .nemo, NeMo is imported and the
model restored (about 10 s more).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from quranft.data.audio import SAMPLE_RATE, load_audio
from quranft.matching.ctc_matcher import CTCMatcher
from quranft.matching.text_matcher import Match, TextMatcher
from quranft.matching.verse_index import default_index
from quranft.models.loading import load_for_ctc
from quranft.quran.references import surah_labels, verses_label

MATCHERS = ("ctc", "text")


@dataclass
class Identified:
    file: str
    verses: list[list[int]] = field(default_factory=list)
    reference: str = ""  # "2:255", "2:1-5", "1:7, 2:1"; "none" when nothing matched
    surahs: list[str] = field(default_factory=list)  # the names of the surahs of `verses`, in order
    score: float | None = None
    with_basmala: bool = False
    transcript: str | None = None
    seconds: float | None = None  # from the file's path to its verses
    duration: float | None = None
    error: str | None = None

    def line(self) -> str:
        if self.error is not None:
            return f"{self.file}\terror: {self.error}"
        if not self.verses:
            return f"{self.file}\tno verse matched\ttranscript: {self.transcript}"
        return (f"{self.file}\t{self.reference} {', '.join(self.surahs)}\tscore {self.score:.2f}"
                f"\ttranscript: {self.transcript}")


def load_model(path: str | Path, threads: int = 0):
    """(model, CTC matcher) for a .nemo or an exported .onnx; an .onnx never loads NeMo."""
    loaded = load_for_ctc(path, threads)
    return loaded.model, CTCMatcher(loaded.tokenizer, blank=loaded.blank)


def _transcribe(model, audio):
    """(text, log-probs) of one clip by either kind of model."""
    from quranft.models.onnx_model import OnnxModel

    if isinstance(model, OnnxModel):
        log_probs = model.log_probs([audio])[0]
        return model.text(log_probs), log_probs
    from quranft.models.transcribe import transcribe_samples

    transcript = transcribe_samples(model, [audio], keep_log_probs=True)[0]
    return transcript.text, transcript.log_probs


def identify_files(model_path: str | Path, files: Sequence[str | Path], matcher: str = "ctc",
                   threads: int = 0) -> Iterator[Identified]:
    """Each file's verses, in order, as soon as it is done."""
    if matcher not in MATCHERS:
        raise ValueError(f"matcher must be one of {', '.join(MATCHERS)}: got {matcher!r}")
    model, ctc_matcher = load_model(model_path, threads)
    index, text_matcher = default_index(), TextMatcher()
    for file in files:
        started = time.perf_counter()
        result = Identified(file=str(file))
        try:
            audio = load_audio(file)
            if audio.size == 0:
                raise ValueError("no audio samples")
            result.duration = round(len(audio) / SAMPLE_RATE, 3)
            result.transcript, log_probs = _transcribe(model, audio)
            match: Match = (ctc_matcher.match(result.transcript, log_probs, index, text_matcher) if matcher == "ctc"
                            else text_matcher.match(result.transcript, index))
        except Exception as error:  # one file's failure is reported on its line; the others go on
            result.error = f"{type(error).__name__}: {error}"
            yield result
            continue
        result.verses = [list(v) for v in match.verses]
        result.reference, result.surahs = verses_label(match.verses), surah_labels(match.verses)
        result.score, result.with_basmala = round(float(match.score), 4), match.with_basmala
        result.seconds = round(time.perf_counter() - started, 4)
        yield result


def as_json(result: Identified) -> str:
    return json.dumps(asdict(result), ensure_ascii=False)


def run(model_path: str | Path, files: Sequence[str], matcher: str, threads: int, json_lines: bool, out) -> int:
    """Print one line per file to `out`; returns the number of files that failed. Everything else
    (NeMo logs to stdout) goes to stderr, so that `out` holds only the results."""
    failed = 0
    with contextlib.redirect_stdout(sys.stderr):
        for result in identify_files(model_path, files, matcher, threads):
            failed += result.error is not None
            print(as_json(result) if json_lines else result.line(), file=out, flush=True)
    return failed

