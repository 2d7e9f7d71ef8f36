"""Parity of an export with its .nemo, measured on real clips: the validation manifest's in the
workflow; run on its own, `--clips` (a manifest or audio files), else the demo's validation clips
(the repository's demo/quran_ayah_corpus, its validation split: the data stage makes the
workflow's validation manifest from it in the demo, and no manifest is reachable without the
workflow). There must be clips: parity on none is refused (NoParityClips), never reported.

fp32: the largest absolute difference between the graph's log-probs and PyTorch's, and the clips
      whose greedy transcripts differ: there must be none, and the difference must stay under
      MAX_FP32_DIFFERENCE, or the export fails, naming the clips.
int8, int4: agreement, not identity: the share of clips with the same greedy transcript as the
      .nemo's, and the WER between the two transcripts (the .nemo's as the reference).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jiwer
import numpy as np

from quranft.errors import QuranftError
from quranft.fileio import read_jsonl
from quranft.models.transcribe import Transcript, transcribe_files
from quranft.models.windowed import Windowing

# Far above what the two exporters' graphs differ by (1e-4 on the demo models, 5e-5 at real size),
# far below what changes a frame's best class.
MAX_FP32_DIFFERENCE = 1e-2
# One clip at a time: no padding, so that each clip's log-probs are compared as they are (and
# PyTorch's padded CPU batches crawl: the padding's denormal floats slowed a batch of 8 twentyfold here).
BATCH_SIZE = 1


# The clips an export run on its own is compared on when none are given (see the docstring).
DEMO_VALIDATION = Path(__file__).resolve().parents[3] / "demo" / "quran_ayah_corpus"
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus", ".webm")


class ExportParityError(QuranftError, RuntimeError):
    """The fp32 graph does not compute what the .nemo computes; the message names the clips."""


class NoParityClips(QuranftError, ValueError):
    """No clip to compare an export with its .nemo on; the message names what is missing."""


def clips_manifest(clips: Sequence[str | Path] | None, folder: Path) -> tuple[Path, str]:
    """The manifest (JSONL) of the clips to compare, and what they are, in words: `clips` as one
    manifest, or audio files listed into `folder`/clips.jsonl (no text: a threshold is not chosen
    on them), or none given: the demo's validation clips written into `folder` with their text."""
    if clips:
        paths = [Path(c) for c in clips]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise NoParityClips(f"no such clip or manifest: {', '.join(missing)}")
        if len(paths) == 1 and paths[0].suffix == ".jsonl":
            return paths[0], f"the manifest {paths[0]}"
        unknown = [str(p) for p in paths if p.suffix.lower() not in AUDIO_SUFFIXES]
        if unknown:
            raise NoParityClips(f"--clips takes one manifest (.jsonl) or audio files ({', '.join(AUDIO_SUFFIXES)}); "
                                f"got {', '.join(unknown)}")
        rows = [{"id": p.name, "audio_filepath": str(p.resolve())} for p in paths]
        what = f"{len(paths)} audio files"
    else:
        rows = _demo_validation(folder)
        what = f"the demo's validation clips ({DEMO_VALIDATION}, split validation)"
    manifest = folder / "clips.jsonl"
    manifest.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return manifest, what


def _demo_validation(folder: Path) -> list[dict[str, str]]:
    """The demo's validation rows, each one's audio bytes written into `folder` as they are."""
    from quranft.data.sources import audio_bytes, open_split

    if not DEMO_VALIDATION.is_dir():
        raise NoParityClips(f"no clips to compare the export with its .nemo on: give --clips (a manifest or audio "
                            f"files) or --parity-manifest; the default, the demo's validation clips, is not here "
                            f"({DEMO_VALIDATION}: not found)")
    split = open_split({"dataset": str(DEMO_VALIDATION), "splits": {"validation": "validation"}}, "validation")
    rows = []
    for number, row in enumerate(split.rows):
        name = f"demo_validation_{number:03d}.audio"
        (folder / name).write_bytes(audio_bytes(row["audio"]))
        rows.append({"id": name.removesuffix(".audio"), "audio_filepath": name, "text": row["text"]})
    return rows


def parity_clips(manifest: str | Path, count: int) -> list[tuple[str, str]]:
    """(id, audio path) of the manifest's first `count` clips (the data stage's validation rows are
    already a seeded sample of their split)."""
    manifest = Path(manifest)
    rows = read_jsonl(manifest)[:count]
    return [(row.get("id", str(number)), str(manifest.parent / row["audio_filepath"]))
            for number, row in enumerate(rows)]


def _largest_difference(reference: Transcript, exported: Transcript) -> float:
    if reference.log_probs is None or exported.log_probs is None:
        return 0.0
    if reference.log_probs.shape != exported.log_probs.shape:
        return float("inf")
    return float(np.abs(reference.log_probs - exported.log_probs).max())


def agreement(ids: Sequence[str], reference: Sequence[Transcript], exported: Sequence[Transcript]) -> dict[str, Any]:
    """How far one format's transcripts are from the .nemo's, clip by clip."""
    pairs = [(i, r, e) for i, r, e in zip(ids, reference, exported) if r.error is None]
    differ = [i for i, r, e in pairs if e.error is not None or e.text != r.text]
    references = [r.text for _, r, _ in pairs if r.text.strip()]
    hypotheses = [e.text for _, r, e in pairs if r.text.strip()]
    return {"clips": len(pairs), "identical_transcripts": len(pairs) - len(differ),
            "identical_share": (len(pairs) - len(differ)) / len(pairs) if pairs else None,
            "wer_against_nemo": float(jiwer.wer(references, hypotheses)) if references else None,
            "largest_log_prob_difference": max((_largest_difference(r, e) for _, r, e in pairs), default=None),
            "differing_clips": differ}


def transcribe_clips(model, clips: Sequence[tuple[str, str]], windowing: Windowing = Windowing()) -> list[Transcript]:
    """The clips' transcripts and log-probs by a .nemo model (before its export changes it) or a
    graph; a clip longer than a window in `windowing`'s windows (the graph's: at most its max_seconds)."""
    return transcribe_files(model, [path for _, path in clips], batch_size=BATCH_SIZE, keep_log_probs=True,
                            windowing=windowing)


def compared(clips: Sequence[tuple[str, str]], reference: Sequence[Transcript]) -> list[str]:
    """The ids of the clips the .nemo failed on (a missing or undecodable file); raises
    NoParityClips when that leaves none to compare."""
    failed = [clip[0] for clip, transcript in zip(clips, reference) if transcript.error is not None]
    if len(failed) == len(clips):
        raise NoParityClips(f"no clip to compare the export with its .nemo on: {len(clips)} clips given, and the "
                            f".nemo failed on every one ({', '.join(failed[:20])})")
    return failed


def measure(reference: Sequence[Transcript], exported: Mapping[str, Any], clips: Sequence[tuple[str, str]],
            windowing: Windowing = Windowing()) -> dict[str, Any]:
    """Each format's agreement with the .nemo's transcripts `reference` on `clips` (`windowing` as
    the reference's); raises ExportParityError when the fp32 graph's transcripts or log-probs
    differ from PyTorch's."""
    ids = [c[0] for c in clips]
    failed = compared(clips, reference)
    results = {"clips": len(clips), "ids": ids, "reference_failed": failed}
    for fmt, model in exported.items():
        results[fmt] = agreement(ids, reference, transcribe_clips(model, clips, windowing))
    fp32 = results.get("fp32")
    if fp32 is not None:
        fp32["passed"] = not fp32["differing_clips"] and (fp32["largest_log_prob_difference"] or 0.0) <= MAX_FP32_DIFFERENCE
        if not fp32["passed"]:
            raise ExportParityError(
                f"the fp32 graph differs from the .nemo: greedy transcripts differ on {len(fp32['differing_clips'])} of "
                f"{fp32['clips']} clips ({', '.join(fp32['differing_clips'][:20]) or 'none'}); largest log-prob "
                f"difference {fp32['largest_log_prob_difference']:.3g} (at most {MAX_FP32_DIFFERENCE:g})")
    return results
