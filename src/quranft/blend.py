"""Blending the per-source manifests into the train and validation manifests that training reads.

Validation comes from the main corpus alone; train is the main corpus's train split plus, when
data.include_retasy is set, the RetaSy rows. A row whose audio already appears earlier (validation
before train, main corpus before RetaSy) is dropped as a duplicate, so no clip is both trained on
and validated on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from quranft.fileio import read_json, read_jsonl, write_json, write_jsonl

EXAMPLES = 5


def _relocated(row: dict[str, Any], manifest: Path, out_dir: Path) -> dict[str, Any]:
    """The row with its audio path made relative to `out_dir` instead of the source's folder."""
    audio = Path(row["audio_filepath"])
    if not audio.is_absolute():
        audio = Path(manifest).parent / audio
    relocated = dict(row)
    relocated["audio_filepath"] = Path(os.path.relpath(audio, out_dir)).as_posix()
    return relocated


def blend(
    source_dirs: Mapping[str, str | Path],
    include_retasy: bool,
    out_dir: str | Path,
) -> dict[str, Any]:
    """Write `<out_dir>/train.jsonl`, `validation.jsonl` and `report.json`; return the report."""
    out_dir = Path(out_dir)
    main = Path(source_dirs["quran_ayah_corpus"])
    parts = {
        "validation": [("quran_ayah_corpus", main / "validation.jsonl")],
        "train": [("quran_ayah_corpus", main / "train.jsonl")],
    }
    if include_retasy:
        parts["train"].append(("retasy", Path(source_dirs["retasy"]) / "train.jsonl"))

    seen: dict[str, str] = {}
    duplicates: list[str] = []
    manifests: dict[str, list[dict[str, Any]]] = {}
    composition: dict[str, dict[str, Any]] = {}
    for split in ("validation", "train"):
        rows_out = []
        composition[split] = {}
        for source_name, manifest in parts[split]:
            kept = seconds = 0
            for row in read_jsonl(manifest):
                if row["audio_sha1"] in seen:
                    duplicates.append(f"{row['id']}: same audio as {seen[row['audio_sha1']]}")
                    continue
                seen[row["audio_sha1"]] = row["id"]
                rows_out.append(_relocated(row, manifest, out_dir))
                kept += 1
                seconds += row["duration"]
            composition[split][source_name] = {"rows": kept, "hours": round(seconds / 3600, 4)}
        manifests[split] = rows_out

    for split, rows in manifests.items():
        write_jsonl(out_dir / f"{split}.jsonl", rows)
    report = {
        "include_retasy": include_retasy,
        "manifests": {
            split: {
                "path": f"{split}.jsonl",
                "rows": len(rows),
                "hours": round(sum(r["duration"] for r in rows) / 3600, 4),
                "sources": composition[split],
            }
            for split, rows in manifests.items()
        },
        "cross_source_duplicates": {"count": len(duplicates), "examples": duplicates[:EXAMPLES]},
        "sources": {
            name: read_json(Path(path) / "report.json")
            for name, path in source_dirs.items()
            if name == "quran_ayah_corpus" or include_retasy
        },
    }
    write_json(out_dir / "report.json", report)
    return report
