"""Parity of an export with its .nemo, measured on real clips (the validation manifest's).

fp32: the largest absolute difference between the graph's log-probs and PyTorch's, and the clips
      whose greedy transcripts differ: there must be none, and the difference must stay under
      MAX_FP32_DIFFERENCE, or the export fails, naming the clips.
int8, int4: agreement, not identity: the share of clips with the same greedy transcript as the
      .nemo's, and the WER between the two transcripts (the .nemo's as the reference).
"""

from __future__ import annotations

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


class ExportParityError(QuranftError, RuntimeError):
    """The fp32 graph does not compute what the .nemo computes; the message names the clips."""


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


def measure(reference: Sequence[Transcript], exported: Mapping[str, Any], clips: Sequence[tuple[str, str]],
            windowing: Windowing = Windowing()) -> dict[str, Any]:
    """Each format's agreement with the .nemo's transcripts `reference` on `clips` (`windowing` as
    the reference's); raises ExportParityError when the fp32 graph's transcripts or log-probs
    differ from PyTorch's."""
    ids = [c[0] for c in clips]
    failed = [i for i, t in zip(ids, reference) if t.error is not None]
    results = {"clips": len(clips), "reference_failed": failed}
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
