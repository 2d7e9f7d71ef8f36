"""ASR benchmark: WER and CER of a model's CTC transcripts on a test set of (audio, text) rows,
overall and per subset (source), with and without diacritics; and of its RNNT head's, for a hybrid
model (benchmark.decoders), in the result's `decoders.rnnt`.

The test set (for example Quran-Lab/quranic-asr-benchmark: EveryAyah clips of unseen reciters, a
QUL reciter, Tarteel phone recordings) is read once, as the data stage reads its sources
(quranft.data.sources), into 16 kHz mono FLAC and a JSONL manifest; each model is then scored on that.
Transcription is the verse benchmark's: CTC head, greedy (quranft.models.transcribe), and the RNNT
head's greedy decoding of the same encoder output.

Both texts, reference and transcript, are normalised the same way before scoring:

- plain (no diacritics): the verse-identification protocol's normalisation (quranft.quran.arabic.normalize):
  tashkeel, the superscript alef, the Quranic small marks, tatweel, BOM and punctuation removed;
  alef variants (alef wasla included) to bare alef; ta marbuta to ha and alef maqsura to ya.
- diacritized: Unicode NFC; tatweel, pause signs and Quranic small marks removed; Uthmani forms
  mapped to the common ones (alef wasla to alef, the Uthmani sukun to sukun, open tanween to
  tanween; quranft.quran.arabic.UTHMANI_FALLBACKS); anything that is not an Arabic letter or mark becomes a
  space. The tashkeel stays, so a missing or different vowel mark is an error.

WER and CER are corpus-level figures of each subset (jiwer): all edits over all reference words
(characters, spaces included) of the subset, not a mean of per-clip rates. A clip that could not
be transcribed counts as an empty transcript (every reference word deleted) and is listed.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import jiwer

from quranft.data.audio import SAMPLE_RATE, pcm16, write_clip
from quranft.data.sources import decode_value, open_split
from quranft.evaluation.code_versions import ASR_BENCHMARK, scorer_version
from quranft.fileio import manifest_hash, read_json, read_jsonl, staged_dir, write_json, write_jsonl
from quranft.provenance import provenance
from quranft.quran.arabic import collapse_spaces, diacritized, normalize

log = logging.getLogger("quranft")

TEST_SET_MANIFEST = "manifest.jsonl"
REPORT = "report.json"
ALL = "all"  # the subset of rows that name none, and the key of the overall figures

NORMALISATIONS = {"plain": normalize, "diacritized": diacritized}


def subset_of(row: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    """The row's subset: its subset column, else the folder of its audio file (audio/<subset>/x.wav)."""
    if settings["subset_column"]:
        return str(row.get(settings["subset_column"]) or ALL)
    value = row.get(settings["audio_column"])
    path = value.get("path") if isinstance(value, Mapping) else value
    folder = PurePosixPath(str(path)).parent.name if isinstance(path, str) and "/" in path else ""
    return folder or ALL


def prepare_asr_set(settings: Mapping[str, Any], out_dir: str | Path) -> dict[str, Any]:
    """Decode the configured test set into `out_dir` (audio/, manifest.jsonl, report.json)."""
    out_dir = Path(out_dir)
    opened = open_split({**settings, "splits": {"test": settings["split"]}}, "test")
    with staged_dir(out_dir) as staging:
        (staging / "audio").mkdir()
        rows, skipped, kept = [], Counter(), Counter()
        for index, row in enumerate(opened.rows):
            if settings["max_rows"] is not None and index >= settings["max_rows"]:
                break
            text = collapse_spaces(str(row.get(settings["text_column"]) or ""))
            clip = decode_value(row[settings["audio_column"]], SAMPLE_RATE) if text else None
            if clip is None or clip.reason is not None:
                skipped["empty_text" if clip is None else clip.reason] += 1
                continue
            subset = subset_of(row, settings)
            file = f"audio/{index:06d}.flac"
            write_clip(staging / file, pcm16(clip.samples), SAMPLE_RATE, "flac")
            rows.append({"id": f"{index:06d}", "audio_filepath": file, "duration": round(clip.duration, 3),
                         "text": text, "subset": subset})
            kept[subset] += 1
        write_jsonl(staging / TEST_SET_MANIFEST, rows)
        report = {"dataset": opened.description, "rows_read": len(rows) + sum(skipped.values()),
                  "kept": len(rows), "by_subset": dict(sorted(kept.items())), "skipped": dict(sorted(skipped.items())),
                  "hours": round(sum(r["duration"] for r in rows) / 3600, 3),
                  "sha256": manifest_hash(staging / TEST_SET_MANIFEST, staging, [r["audio_filepath"] for r in rows])}
        write_json(staging / REPORT, report)
    return report


def error_rates(references: list[str], hypotheses: list[str]) -> dict[str, Any]:
    """WER and CER under each normalisation; rows whose normalised reference is empty are left out."""
    figures: dict[str, Any] = {"clips": len(references)}
    for name, norm in NORMALISATIONS.items():
        pairs = [(norm(r), norm(h)) for r, h in zip(references, hypotheses)]
        pairs = [(r, h) for r, h in pairs if r]
        refs, hyps = [r for r, _ in pairs], [h for _, h in pairs]
        figures[name] = {"wer": float(jiwer.wer(refs, hyps)) if refs else None,
                         "cer": float(jiwer.cer(refs, hyps)) if refs else None,
                         "reference_words": sum(len(r.split()) for r in refs)}
    return figures


def error_rates_by_subset(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Figures overall and per subset (subsets in name order)."""
    by_subset: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_subset[row["subset"]].append(row)
    groups = {ALL: rows, **{name: by_subset[name] for name in sorted(by_subset)}} if len(by_subset) > 1 else {ALL: rows}
    return {name: {**error_rates([r["reference"] for r in group], [r["hypothesis"] for r in group]),
                   "failed": sum(r["error"] is not None for r in group)}
            for name, group in groups.items()}


def asr_rows(manifest: list[dict[str, Any]], transcripts) -> list[dict[str, Any]]:
    """Each clip's reference beside a head's transcript (models.transcribe.Transcript) or error."""
    return [{"id": row["id"], "subset": row["subset"], "duration": row["duration"], "reference": row["text"],
             "hypothesis": t.text, "error": t.error} for row, t in zip(manifest, transcripts)]


def run_asr_benchmark(model_path: str | Path, set_dir: str | Path, out_json: str | Path, model_name: str,
                      batch_size: int = 8, device: str = "cpu",
                      decoders: tuple[str, ...] = ("ctc", "rnnt")) -> dict[str, Any]:
    """Transcribe the prepared test set with one model and write its figures to `out_json`; with
    `rnnt` among the `decoders` and a hybrid model, its RNNT head's too (`decoders.rnnt`)."""
    # imported here: preparing the test set (above) needs neither NeMo nor torch
    from quranft.models import nemo_models
    from quranft.models.transcribe import (
        has_rnnt_head,
        rnnt_decoding,
        transcribe_files,
        use_ctc_greedy,
        use_rnnt_greedy,
    )

    set_dir, model_path = Path(set_dir), Path(model_path)
    model = nemo_models.restore(model_path, map_location=device)
    manifest = read_jsonl(set_dir / TEST_SET_MANIFEST)
    rnnt = "rnnt" in decoders and has_rnnt_head(model)
    if rnnt:
        use_rnnt_greedy(model)
    use_ctc_greedy(model)
    transcripts = transcribe_files(model, [str(set_dir / row["audio_filepath"]) for row in manifest],
                                   batch_size=batch_size, rnnt=rnnt)
    rows = asr_rows(manifest, transcripts)
    heads = {}
    if rnnt:  # a clip the CTC head could not transcribe has no RNNT transcript either: its error stands
        rnnt_rows = asr_rows(manifest, [t.rnnt or t for t in transcripts])
        heads["rnnt"] = {"decoding": rnnt_decoding(model), "summary": error_rates_by_subset(rnnt_rows),
                         "rows": rnnt_rows}
    result = {
        "model": {"name": model_name, "file": str(model_path), "bytes": model_path.stat().st_size},
        "test_set": {"path": str(set_dir), **read_json(set_dir / REPORT)},
        "decoding": {"head": "ctc", "strategy": "greedy"},
        "normalisations": {"plain": "quranft.quran.arabic.normalize (the verse protocol's: no diacritics, letter "
                                    "variants folded)",
                           "diacritized": "NFC, Uthmani forms mapped, Quranic marks and tatweel removed, "
                                          "tashkeel kept"},
        "summary": error_rates_by_subset(rows),
        # the hash of all the code that decides these error rates (code_versions.scorer_version)
        "scorer": {"version": scorer_version(ASR_BENCHMARK)},
        **({"decoders": heads} if heads else {}),
        "rows": rows,
        "provenance": provenance(),
    }
    write_json(out_json, result)
    return result
