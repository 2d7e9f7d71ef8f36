"""Blending the per-source manifests into the train and validation manifests that training reads.

Validation comes from the main corpus alone; train is the main corpus's train split plus, when
RetaSy is included, the RetaSy rows. A row whose audio already appears earlier (validation before
train, main corpus before RetaSy) is dropped as a duplicate, so that no clip is both trained on and
validated on. The data stage prepares the most rows any trial asks for and blends them all; each
trial blends again with its own caps (its max_*_samples) and RetaSy choice, and the report says
what each cap asked for against what was available.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from quranft.fileio import read_json, read_jsonl, write_json, write_jsonl

log = logging.getLogger("quranft")

EXAMPLES = 5


def _parts(source_dirs: Mapping[str, str | Path], include_retasy: bool):
    main = Path(source_dirs["quran_ayah_corpus"])
    parts = {
        "validation": [("quran_ayah_corpus", main / "validation.jsonl", "max_val_samples")],
        "train": [("quran_ayah_corpus", main / "train.jsonl", "max_train_samples")],
    }
    if include_retasy:
        parts["train"].append(("retasy", Path(source_dirs["retasy"]) / "train.jsonl", "max_retasy_samples"))
    return parts


def blend_rows(
    source_dirs: Mapping[str, str | Path],
    include_retasy: bool,
    caps: Mapping[str, int | None] | None = None,
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    """The blended rows per split, with audio paths relative to the working directory.

    `caps` limits the rows taken (in manifest order) from the main corpus's train
    ("max_train_samples") and validation ("max_val_samples") splits and from RetaSy
    ("max_retasy_samples"), as a trial's keys do; a cap asking for more than is available is
    logged as a warning.
    """
    caps = caps or {}
    cap_report: dict[str, dict[str, Any]] = {}
    seen: dict[str, str] = {}
    duplicates: list[str] = []
    manifests: dict[str, list[dict[str, Any]]] = {}
    composition: dict[str, dict[str, Any]] = {}
    for split, parts in _parts(source_dirs, include_retasy).items():
        rows_out: list[dict[str, Any]] = []
        composition[split] = {}
        for source_name, manifest, cap_name in parts:
            cap = caps.get(cap_name)
            kept = available = 0
            seconds = 0.0
            for row in read_jsonl(manifest):
                if row["audio_sha1"] in seen:
                    duplicates.append(f"{row['id']}: same audio as {seen[row['audio_sha1']]}")
                    continue
                available += 1
                if cap is not None and kept >= cap:
                    continue
                seen[row["audio_sha1"]] = row["id"]
                audio = row["audio_filepath"]
                if not os.path.isabs(audio):
                    audio = os.path.normpath(os.path.join(manifest.parent, audio))
                rows_out.append({**row, "audio_filepath": audio})
                kept += 1
                seconds += row["duration"]
            composition[split][source_name] = {"rows": kept, "available": available, "cap": cap,
                                               "hours": round(seconds / 3600, 4)}
            if cap is not None:
                cap_report[cap_name] = _cap_usage(cap_name, cap, available, kept, manifest, split)
        manifests[split] = rows_out
    report = {
        "include_retasy": include_retasy,
        "manifests": {
            split: {"rows": len(rows), "hours": round(sum(r["duration"] for r in rows) / 3600, 4),
                    "sources": composition[split]}
            for split, rows in manifests.items()
        },
        "cross_source_duplicates": {"count": len(duplicates), "examples": duplicates[:EXAMPLES]},
        "caps": cap_report,
    }
    return manifests, report


def _cap_usage(key: str, asked: int, available: int, used: int, manifest: Path, split: str) -> dict[str, Any]:
    """What a cap asked for against what the data stage prepared, and why it fell short if it did."""
    prepared = read_json(manifest.parent / "report.json")
    data_stage_cap = prepared["settings"]["caps"][split]
    # Kept fewer than its cap: the data stage ran out of source rows (a stream may not say how many
    # rows it stopped short of, so over_cap cannot tell).
    exhausted = data_stage_cap is None or prepared["splits"][split]["kept"] < data_stage_cap
    usage = {"asked": asked, "available": available, "used": used, "data_stage_cap": data_stage_cap,
             "source_exhausted": exhausted}
    if asked > available:
        why = (f"that is every usable row of {prepared['source']} ({manifest})" if exhausted else
               f"the data stage stopped at its cap of {data_stage_cap} (data.{key} in the config)")
        log.warning("%s asks for %d rows, but %d are available: %s. Training on %d.", key, asked, available,
                    why, used)
    return usage


def write_manifest(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Write rows as a NeMo manifest whose audio paths are relative to the manifest's folder."""
    path = Path(path)
    write_jsonl(path, ({**row, "audio_filepath": Path(os.path.relpath(row["audio_filepath"], path.parent)).as_posix()}
                       for row in rows))


def source_reports(source_dirs: Mapping[str, str | Path], include_retasy: bool) -> dict[str, Any]:
    """Each blended source's data-stage report (<dir>/report.json), by source name."""
    return {name: read_json(Path(path) / "report.json") for name, path in source_dirs.items()
            if name == "quran_ayah_corpus" or include_retasy}


def data_report(source_dirs: Mapping[str, str | Path], include_retasy: bool, out: str | Path) -> dict[str, Any]:
    """Write the data stage's report (`out`): the blend of everything prepared (its composition,
    cross-source duplicates) and each source's report. Trials blend their own caps and write their
    own manifests; this is what the data stage had to offer them."""
    _, report = blend_rows(source_dirs, include_retasy)
    report["sources"] = source_reports(source_dirs, include_retasy)
    write_json(out, report)
    return report


def blend(source_dirs: Mapping[str, str | Path], include_retasy: bool, out_dir: str | Path) -> dict[str, Any]:
    """Write `<out_dir>/train.jsonl`, `validation.jsonl` and `report.json`: the blend of everything
    prepared as NeMo manifests, for use outside the workflow (or to pretrain on); return the report."""
    out_dir = Path(out_dir)
    manifests, report = blend_rows(source_dirs, include_retasy)
    for split, rows in manifests.items():
        write_manifest(out_dir / f"{split}.jsonl", rows)
        report["manifests"][split]["path"] = f"{split}.jsonl"
    report["sources"] = source_reports(source_dirs, include_retasy)
    write_json(out_dir / "report.json", report)
    return report
