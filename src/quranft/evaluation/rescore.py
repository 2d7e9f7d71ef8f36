"""Re-scoring saved model output with a matcher, without running the model again.

Transcripts come from a JSONL file of {id, text} or from a benchmark JSON's rows (the CTC head's,
or the RNNT head's of its `decoders.rnnt`, which only the text matcher scores); the ctc matcher
also needs the saved log-probabilities and the tokenizer that produced them (read from the .nemo).
A sample of the corpus without a transcript scores 0 and says so (error kind `no_transcript`).

From a benchmark JSON, its `rejection` (the model's confidence threshold) and each row's speech
seconds judge the predictions as the benchmark did; the confidence needs the log-probabilities and
the tokenizer (--log-probs, --tokenizer-from): without them only the voice-activity verdict stands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from quranft.data.benchmark_corpus import load_samples
from quranft.errors import QuranftError
from quranft.evaluation.code_versions import matcher_versions
from quranft.fileio import read_jsonl, write_json
from quranft.matching.ctc_matcher import CTCMatcher, load_log_probs
from quranft.matching.rejection import Rejection
from quranft.matching.scoring import score_rows
from quranft.matching.text_matcher import TextMatcher
from quranft.matching.verse_index import default_index
from quranft.quran.tokenizer import SentencePieceTokenizer


class RescoreError(QuranftError, ValueError):
    """Inputs that cannot be re-scored; the message names the file."""


def read_transcripts(path: str | Path, decoder: str = "ctc") -> dict[str, str | None]:
    """Transcripts by sample id: of a JSONL file, or of one head (`decoder`) of a benchmark JSON."""
    path = Path(path)
    if path.suffix == ".json":
        return {row["id"]: row.get("transcript") for row in _benchmark_rows(path, decoder)}
    if decoder != "ctc":
        raise RescoreError(f"{path}: a JSONL file of transcripts names no head; give --decoder only with a "
                           "benchmark JSON")
    transcripts = {}
    for number, row in enumerate(read_jsonl(path), start=1):
        if "id" not in row or "text" not in row:
            raise RescoreError(f"{path}:{number}: every line needs 'id' and 'text'")
        transcripts[str(row["id"])] = row["text"]
    return transcripts


def _benchmark_rows(path: Path, decoder: str) -> list[dict[str, Any]]:
    benchmark = json.loads(path.read_text(encoding="utf-8"))
    if decoder == "ctc":
        return benchmark["rows"]
    if decoder in (benchmark.get("decoders") or {}):
        return benchmark["decoders"][decoder]["rows"]
    raise RescoreError(f"{path}: has no transcripts of the {decoder} head (decoders.{decoder})")


def read_judging(path: str | Path, decoder: str = "ctc") -> tuple[Rejection | None, dict[str, float | None]]:
    """A benchmark JSON's rejection and each row's speech seconds (none for a JSONL of transcripts)."""
    path = Path(path)
    if path.suffix != ".json":
        return None, {}
    rejection = Rejection.from_dict(json.loads(path.read_text(encoding="utf-8")).get("rejection"))
    return rejection, {row["id"]: row.get("speech_seconds") for row in _benchmark_rows(path, decoder)}


def rescore(corpus: str | Path, transcripts_path: str | Path, matcher: str, output: str | Path,
            log_probs_path: str | Path | None = None, tokenizer_from: str | Path | None = None,
            decoder: str = "ctc") -> dict[str, Any]:
    ctc_matcher = None
    log_probs = None
    if matcher == "ctc" and decoder != "ctc":
        raise RescoreError(f"the {decoder} head's transcripts are scored by the text matcher: the ctc matcher "
                           "re-ranks by the CTC head's log-probabilities")
    if matcher == "ctc" and (not log_probs_path or not tokenizer_from):
        raise RescoreError("the ctc matcher needs --log-probs and --tokenizer-from")
    if log_probs_path and tokenizer_from and decoder == "ctc":  # the ctc matcher; the CTC head's confidences
        tokenizer = SentencePieceTokenizer.from_nemo(tokenizer_from)
        ctc_matcher = CTCMatcher(tokenizer, blank=tokenizer.vocab_size)
        log_probs = load_log_probs(log_probs_path)
    samples = load_samples(corpus)
    transcripts = read_transcripts(transcripts_path, decoder)
    rejection, speech = read_judging(transcripts_path, decoder)
    rows = []
    for sample in samples:
        text = transcripts.get(sample.id)
        rows.append({"id": sample.id, "category": sample.category,
                     "expected": [list(v) for v in sample.expected_verses], "transcript": text,
                     "error": None if text is not None else f"no transcript for {sample.id} in {transcripts_path}",
                     "error_kind": None if text is not None else "no_transcript",
                     "speech_seconds": speech.get(sample.id)})
    text_matcher = TextMatcher()
    summaries = score_rows(rows, (matcher,), default_index(), text_matcher, ctc_matcher, log_probs, rejection)
    settings = (ctc_matcher if matcher == "ctc" else text_matcher).settings()
    result = {"corpus": str(corpus), "transcripts": str(transcripts_path), "decoder": decoder,
              "matcher": {"name": matcher, "version": matcher_versions()[matcher], "settings": settings},
              "rejection": None if rejection is None else rejection.as_dict(), "summary": summaries, "rows": rows}
    write_json(output, result)
    return result
