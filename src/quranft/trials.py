"""Trials as files: config/trials/<name>.yaml, each extending another trial or the schema's defaults.

A trial file is checked on its own (unknown keys, wrong types, out-of-range values fail with the
file and key named), then merged over the trial it extends, then over the config's
`trials.overrides` (the demo's scale-down), then completed with the schema's defaults.
Kept free of heavy imports: the Snakefile resolves every trial on each parse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from quranft.config import fill_defaults, first_error, load_schema
from quranft.errors import QuranftError

TRIAL_SCHEMA = "schema/trial.schema.yaml"


class TrialError(QuranftError, ValueError):
    """A trial file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Trial:
    name: str
    values: dict[str, Any]  # every key of the schema, resolved
    files: tuple[Path, ...]  # the trial's file and the files it extends, nearest first


def trial_file(trials_dir: str | Path, name: str) -> Path:
    return Path(trials_dir) / f"{name}.yaml"


def _read(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrialError(f"{path}: trial file not found") from None
    except yaml.YAMLError as error:
        raise TrialError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(loaded, dict):
        raise TrialError(f"{path}: expected a mapping of trial keys")
    return loaded


def _check(schema: Mapping[str, Any], values: Mapping[str, Any], where: str) -> None:
    message = first_error(schema, values, what=f"{where}: key")
    if message:
        raise TrialError(message)


def load_trial(trials_dir: str | Path, name: str, overrides: Mapping[str, Any] | None = None) -> Trial:
    """Resolve trial `name`: its file over the trials it extends, then `overrides`, then defaults."""
    schema = load_schema(TRIAL_SCHEMA)
    chain: list[tuple[Path, dict[str, Any]]] = []
    current: str | None = name
    while current is not None:
        path = trial_file(trials_dir, current)
        if any(path == seen for seen, _ in chain):
            cycle = " -> ".join(str(p) for p, _ in chain + [(path, {})])
            raise TrialError(f"{chain[-1][0]}: key 'extends' makes a cycle: {cycle}")
        values = _read(path)
        _check(schema, values, str(path))
        chain.append((path, values))
        current = values.get("extends")

    merged: dict[str, Any] = {}
    for _, values in reversed(chain):
        merged.update(values)
    merged["trigger"] = chain[0][1]["trigger"]
    merged.pop("extends", None)
    if overrides:
        merged.update(overrides)
        _check(schema, merged, f"{chain[0][0]} with trials.overrides")
    fill_defaults(schema, merged, schema)
    _check_relations(merged, chain[0][0])
    return Trial(name=name, values=merged, files=tuple(path for path, _ in chain))


def _check_relations(values: Mapping[str, Any], path: Path) -> None:
    if values["average_top_k"] > values["save_top_k"]:
        raise TrialError(
            f"{path}: key 'average_top_k' ({values['average_top_k']}) must not exceed "
            f"'save_top_k' ({values['save_top_k']}): only the kept checkpoints can be averaged"
        )
    if values["min_lr"] > values["lr"]:
        raise TrialError(f"{path}: key 'min_lr' ({values['min_lr']}) must not exceed 'lr' ({values['lr']})")


def trial_schema_keys() -> list[str]:
    return sorted(load_schema(TRIAL_SCHEMA)["properties"])
