"""Resume or restart: whether a trial's existing checkpoints still belong to the run asked for.

checkpoints/run.json records what the checkpoints were trained from: the trial values that change
training (quranft.training.trials.training_values: not `trigger` or `average_top_k`), the
base model's hash and the manifests' hashes. A re-run with the same record resumes from the newest
checkpoint (a finished run finishes again at once, keeping its checkpoints); a re-run with another
record moves the old checkpoints aside to checkpoints.superseded-<time>/ (days of training are
never deleted by an edit) and starts over, logging what changed.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from pathlib import Path
from typing import Any, NamedTuple

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping

from quranft.config import load_schema
from quranft.fileio import atomic_write_text, read_json, write_json
from quranft.training.trials import TRIAL_SCHEMA, Trial, training_values

log = logging.getLogger("quranft")

RUN_FILE = "run.json"  # in checkpoints/: what the checkpoints were trained from


class Resume(NamedTuple):
    checkpoint: Path
    step: int  # the global step the checkpoint was saved at


def run_fingerprint(trial: Trial, base_model_sha256: str, manifests: dict[str, dict]) -> dict[str, Any]:
    """What the checkpoints of this run depend on, as plain JSON values."""
    fingerprint = {"trial": training_values(trial.values), "base_model_sha256": base_model_sha256,
                   "manifests": {split: m["sha256"] for split, m in manifests.items()}}
    return json.loads(json.dumps(fingerprint))


def _comparable(recorded: dict[str, Any]) -> dict[str, Any]:
    # Records written before the fingerprint left out the keys that do not change training held
    # every trial value, records written before a trial key existed lack it (their run trained as
    # its default does), and records written before a key was removed from the schema (output_name,
    # which named nothing) hold it: read them all the same way, so that their checkpoints are kept.
    schema = load_schema(TRIAL_SCHEMA)["properties"]
    defaults = {key: spec["default"] for key, spec in schema.items() if "default" in spec}
    known = {key: value for key, value in recorded.get("trial", {}).items() if key in schema}
    return {**recorded, "trial": training_values({**defaults, **known})}


def changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The differences between two fingerprints, one `key: old -> new` line each."""
    lines = []
    for section in sorted(set(old) | set(new)):
        before, after = old.get(section), new.get(section)
        if isinstance(before, dict) and isinstance(after, dict):
            lines += [f"{section}.{key}: {before.get(key)!r} -> {after.get(key)!r}"
                      for key in sorted(set(before) | set(after)) if before.get(key) != after.get(key)]
        elif before != after:
            lines.append(f"{section}: {before!r} -> {after!r}")
    return lines


def newest_readable_checkpoint(checkpoints: Path) -> Resume | None:
    """last.ckpt, or, if a kill cut it short, the newest checkpoint that still loads."""
    candidates = sorted(checkpoints.glob("*.ckpt"), key=lambda p: (p.name == "last.ckpt", p.stat().st_mtime),
                        reverse=True)
    for path in candidates:
        try:
            step = torch.load(path, map_location="cpu", weights_only=False, mmap=True)["global_step"]
        except Exception as error:  # truncated zip archives raise several types
            log.warning("checkpoint %s does not load (%s): skipped", path, error)
            continue
        return Resume(path, step)
    return None


def _set_aside(checkpoints: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = checkpoints.with_name(f"{checkpoints.name}.superseded-{stamp}")
    number = 1
    while aside.exists():
        number += 1
        aside = checkpoints.with_name(f"{checkpoints.name}.superseded-{stamp}-{number}")
    checkpoints.rename(aside)
    return aside


def prepare_checkpoints(checkpoints: Path, fingerprint: dict[str, Any]) -> Resume | None:
    """The checkpoint to resume from, if the existing ones come from this very run; else start clean
    (the old checkpoints moved aside, the changes logged)."""
    run_file = checkpoints / RUN_FILE
    recorded = read_json(run_file) if run_file.exists() else None
    if recorded is not None and _comparable(recorded) == fingerprint:
        return newest_readable_checkpoint(checkpoints)
    if checkpoints.exists():
        aside = _set_aside(checkpoints)
        if recorded is None:
            log.warning("%s held checkpoints with no record of what they were trained from: moved to %s; "
                        "starting over", checkpoints, aside)
        else:
            log.warning("training settings changed since %s was written (%s): its checkpoints moved to %s; "
                        "starting over", run_file, "; ".join(changes(_comparable(recorded), fingerprint)), aside)
    checkpoints.mkdir(parents=True)
    write_json(run_file, fingerprint)
    return None


class StoppedEarlyStaysStopped(pl.Callback):
    """A resumed run that had already stopped early stops again before its first step: the
    restored early-stopping state says it ran out of patience. (A run that reached max_steps
    stops by itself.)"""

    def on_train_start(self, trainer, pl_module):
        stopper = trainer.early_stopping_callback
        if isinstance(stopper, EarlyStopping) and stopper.wait_count >= stopper.patience:
            log.info("the resumed run had stopped early at step %d: nothing left to train", trainer.global_step)
            trainer.should_stop = True


class MetricsAcrossResume:
    """Lightning's CSV logger empties metrics.csv when it starts; on a resume the rows logged up to
    the resumed step are read first and put back in front of the new ones, so the curves show the
    whole run."""

    def __init__(self, metrics_csv: Path, resumed: bool):
        self.path = metrics_csv
        self.earlier = self.path.read_text(encoding="utf-8") if resumed and self.path.exists() else ""

    def restore(self, start_step: int) -> None:
        earlier = [row for row in csv.DictReader(io.StringIO(self.earlier))
                   if row.get("step") and int(float(row["step"])) <= start_step]
        if not earlier:
            return
        later = list(csv.DictReader(io.StringIO(self.path.read_text(encoding="utf-8")))) if self.path.exists() else []
        columns = sorted({name for row in earlier + later for name in row})
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(earlier + later)
        atomic_write_text(self.path, out.getvalue())
