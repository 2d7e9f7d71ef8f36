"""Trials as files: config/trials/<name>.yaml, each extending another trial or the schema's defaults.

A trial file is checked on its own (unknown keys, wrong types, out-of-range values fail with the
file and key named), then merged over the trial it extends, then over the config's
`trials.overrides` (the demo's scale-down), then completed with the schema's defaults.
Kept free of heavy imports: the Snakefile resolves every trial on each parse.
"""

from __future__ import annotations

import copy
import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from quranft.config import fill_defaults, first_error, load_schema, parse_yaml
from quranft.errors import QuranftError

TRIAL_SCHEMA = "schema/trial.schema.yaml"

log = logging.getLogger("quranft")


class TrialError(QuranftError, ValueError):
    """A trial file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Trial:
    name: str
    values: dict[str, Any] | None  # every key of the schema, resolved; None while the best is unknown
    files: tuple[Path, ...]  # the trial's file and the files it extends, nearest first
    best_of: dict[str, Any] | None = None  # extends_best, when the parent is the best of candidates


RESOLVED = "trial.yaml"  # results/<trial>/trial.yaml: an extends_best trial, resolved
# extends_best.metric that ranks the candidates by their best monitored validation WER (from
# training); the others are benchmark figures.
VALIDATION_WER = "validation_wer"

# Trial values that do not change what training produces: editing them never restarts training
# (the run fingerprint leaves them out) and re-runs only what reads them (averaging reads
# average_top_k; max_unknown_char_fraction only decides whether training may start).
NOT_TRAINING_KEYS = ("trigger", "average_top_k", "max_unknown_char_fraction")
# Keys that only batching: duration reads; with fixed batching they do not change training either.
DURATION_BATCHING_KEYS = ("batch_duration", "quadratic_duration", "num_buckets", "bucket_buffer_size")


def training_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """The resolved trial values that determine training: all but NOT_TRAINING_KEYS, and but
    DURATION_BATCHING_KEYS when the trial batches a fixed number of clips."""
    ignored = NOT_TRAINING_KEYS + (DURATION_BATCHING_KEYS if values["batching"] == "fixed" else ())
    return {key: value for key, value in values.items() if key not in ignored}


def trial_file(trials_dir: str | Path, name: str) -> Path:
    return Path(trials_dir) / f"{name}.yaml"


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TrialError(f"{path}: trial file not found") from None
    try:
        loaded = _parsed(text)
    except yaml.YAMLError as error:
        raise TrialError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(loaded, dict):
        raise TrialError(f"{path}: expected a mapping of trial keys")
    return copy.deepcopy(loaded)


@functools.lru_cache(maxsize=None)
def _parsed(text: str) -> Any:
    """A trial file's text parsed once per process: a parse of the Snakefile resolves each trial,
    and its `extends` chain, several times."""
    return parse_yaml(text)


def _check(schema: Mapping[str, Any], values: Mapping[str, Any], where: str) -> None:
    message = first_error(schema, values, what=f"{where}: key")
    if message:
        raise TrialError(message)


def _chain(trials_dir: str | Path, name: str, schema: Mapping[str, Any]) -> list[tuple[Path, dict[str, Any]]]:
    """The trial's file and the files it extends, each checked on its own, nearest first."""
    chain: list[tuple[Path, dict[str, Any]]] = []
    current: str | None = name
    while current is not None:
        path = trial_file(trials_dir, current)
        if any(path == seen for seen, _ in chain):
            cycle = " -> ".join(str(p) for p, _ in chain + [(path, {})])
            raise TrialError(f"{chain[-1][0]}: key 'extends' makes a cycle: {cycle}")
        values = _read(path)
        _check(schema, values, str(path))
        if "extends" in values and "extends_best" in values:
            raise TrialError(f"{path}: key 'extends_best' cannot be combined with 'extends'")
        if "extends_best" in values and chain:
            raise TrialError(f"{chain[-1][0]}: key 'extends' names {current}, which uses extends_best; "
                             "extend a trial with fixed values instead")
        chain.append((path, values))
        current = values.get("extends")
    return chain


def _resolve(chain, overrides, schema) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for _, values in reversed(chain):
        merged.update(values)
    merged["trigger"] = chain[0][1]["trigger"]
    merged.pop("extends", None)
    merged.pop("extends_best", None)
    if overrides:
        merged.update(overrides)
        _check(schema, merged, f"{chain[0][0]} with trials.overrides")
    fill_defaults(schema, merged, schema)
    _check_relations(merged, chain[0][0])
    return merged


def load_trial(trials_dir: str | Path, name: str, overrides: Mapping[str, Any] | None = None,
               resolved_dir: str | Path | None = None) -> Trial:
    """Resolve trial `name`: its file over the trials it extends, then `overrides`, then defaults.

    A trial that uses extends_best takes its values from `<resolved_dir>/<name>/trial.yaml`
    (written by `resolve_best`); without it, its values stay None.
    """
    schema = load_schema(TRIAL_SCHEMA)
    chain = _chain(trials_dir, name, schema)
    files = tuple(path for path, _ in chain)
    best_of = chain[0][1].get("extends_best")
    if best_of is None:
        return Trial(name=name, values=_resolve(chain, overrides, schema), files=files)
    best_of = _best_of(chain[0][1], schema)
    for parent in best_of["trials"]:
        if parent == name:
            raise TrialError(f"{files[0]}: key 'extends_best' names the trial itself")
        # a missing or broken candidate fails now, not after hours of training
        if "extends_best" in _chain(trials_dir, parent, schema)[0][1]:
            raise TrialError(f"{files[0]}: key 'extends_best' names {parent}, which uses extends_best itself")
    resolved = Path(resolved_dir) / name / RESOLVED if resolved_dir is not None else None
    if resolved is None or not resolved.exists():
        return Trial(name=name, values=None, files=files, best_of=best_of)
    values = _read(resolved)
    _check(schema, values, str(resolved))
    return Trial(name=name, values=values, files=(resolved, *files), best_of=best_of)


def _best_of(values: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """A trial file's extends_best with the schema's defaults (the metric) filled in."""
    best_of = dict(values["extends_best"])
    fill_defaults(schema["properties"]["extends_best"], best_of, schema)
    return best_of


def candidate_scores_file(best_of: Mapping[str, Any]) -> str:
    """The file of results/<candidate>/ that holds extends_best's metric: the training metadata
    for the validation WER (so that the choice never looks at the benchmark corpus), the
    benchmark JSON for a benchmark metric."""
    return "training_metadata.json" if best_of["metric"] == VALIDATION_WER else "benchmark.json"


def _all_equal(values: Mapping[str, Any], where: str, what: str, remedy: str,
               shown: Mapping[str, str] | None = None) -> Any:
    """The one value all candidates share; else an error listing each candidate's (or `shown`)."""
    if len({str(v) for v in values.values()}) > 1:
        listed = "; ".join(f"{candidate}: {(shown or values)[candidate]}" for candidate in values)
        raise TrialError(f"{where}: key 'extends_best' compares {', '.join(values)}, but {what} differ ({listed}); "
                         f"{remedy}")
    return next(iter(values.values()))


def _validation_scores(candidates: list[str], results: Mapping[str, Mapping[str, Any]],
                       where: str) -> tuple[dict[str, float], dict[str, Any]]:
    """Each candidate's best monitored validation WER, and the validation manifest they share."""
    scores, monitors, hashes, manifests = {}, {}, {}, {}
    for candidate in candidates:
        training = results[candidate]["training"]
        if training["best_score"] is None:
            raise TrialError(f"{where}: key 'extends_best' ranks {candidate} by its validation WER, but its "
                             "training_metadata.json records none (training.best_score is null)")
        scores[candidate] = training["best_score"]
        monitors[candidate] = training["monitor"]
        manifest = results[candidate]["data"]["manifests"]["validation"]
        hashes[candidate] = manifest["sha256"]  # each trial writes its own copy: the content decides
        manifests[candidate] = f"{manifest['path']} (sha256 {manifest['sha256']})"
    remedy = "give the candidates the same validation data (max_val_samples, text_option) and monitor, " \
             "or rank them by a benchmark metric"
    monitor = _all_equal(monitors, where, "the validation WERs they monitor", remedy)
    sha256 = _all_equal(hashes, where, "the validation manifests they were validated on", remedy, manifests)
    return scores, {"monitor": monitor, "validation_manifest_sha256": sha256}


def _benchmark_scores(candidates: list[str], metric: str, results: Mapping[str, Mapping[str, Any]],
                      where: str) -> tuple[dict[str, float], dict[str, Any]]:
    """Each candidate's benchmark figure by `metric`, and the corpus they share."""
    scores, corpora = {}, {}
    for candidate in candidates:
        benchmark = results[candidate]
        if metric == "wer":
            scores[candidate] = benchmark["transcripts"]["wer"]
        else:
            scores[candidate] = benchmark["summary"][benchmark["matchers"]["primary"]][metric]
        corpora[candidate] = benchmark["corpus"]["sha256"]
    sha256 = _all_equal(corpora, where, "the benchmark corpora (corpus.sha256)", "re-run their benchmarks")
    return scores, {"corpus_sha256": sha256}


def resolve_best(trials_dir: str | Path, name: str, overrides: Mapping[str, Any] | None,
                 results: Mapping[str, Mapping[str, Any]], out: str | Path, choice_out: str | Path) -> dict[str, Any]:
    """Pick the best candidate by extends_best's metric; write the resolved trial file (`out`) and
    how it was chosen (`choice_out`, JSON); return the latter.

    `results` holds each candidate's `candidate_scores_file`, parsed: the training metadata when
    ranking by the validation WER (the candidates must share their validation manifest), the
    benchmark JSON when ranking by a benchmark metric (then the choice is made on the test corpus).
    """
    from quranft.fileio import atomic_write_text, write_json

    schema = load_schema(TRIAL_SCHEMA)
    chain = _chain(trials_dir, name, schema)
    where = str(chain[0][0])
    best_of = _best_of(chain[0][1], schema)
    metric, candidates = best_of["metric"], best_of["trials"]
    for candidate in candidates:
        if candidate not in results:
            raise TrialError(f"{where}: key 'extends_best' names {candidate}, which has no "
                             f"{candidate_scores_file(best_of)}")
    if metric == VALIDATION_WER:
        scores, evidence = _validation_scores(candidates, results, where)
    else:
        scores, evidence = _benchmark_scores(candidates, metric, results, where)
    lower_is_better = metric in (VALIDATION_WER, "wer")
    # Ties go to the earlier trial in the list: the simpler, already-launched configuration.
    chosen = sorted(candidates, key=lambda c: ((scores[c] if lower_is_better else -scores[c]),
                                               candidates.index(c)))[0]
    own = dict(chain[0][1])
    own.pop("extends_best")
    own["extends"] = chosen
    parent_chain = _chain(trials_dir, chosen, schema)
    values = _resolve([(chain[0][0], own), *parent_chain], overrides, schema)
    selected_on = "validation" if metric == VALIDATION_WER else "benchmark"
    choice = {"trial": name, "candidates": candidates, "metric": metric, "selected_on": selected_on,
              "scores": scores, "chosen": chosen, **evidence}
    header = (f"# {name} resolved: extends_best of {candidates} by {metric} on the {selected_on} data "
              f"({', '.join(f'{c}={v:.4f}' for c, v in scores.items())}) -> {chosen}\n"
              f"# Written by the rule resolve_trial from {where}; do not edit.\n")
    atomic_write_text(out, header + yaml.safe_dump(values, allow_unicode=True, sort_keys=False))
    write_json(choice_out, choice)
    return choice


def _check_relations(values: Mapping[str, Any], path: Path) -> None:
    if values["average_top_k"] > values["save_top_k"]:
        raise TrialError(
            f"{path}: key 'average_top_k' ({values['average_top_k']}) must not exceed "
            f"'save_top_k' ({values['save_top_k']}): only the kept checkpoints can be averaged"
        )
    if values["min_lr"] > values["lr"]:
        raise TrialError(f"{path}: key 'min_lr' ({values['min_lr']}) must not exceed 'lr' ({values['lr']})")
    if values["batching"] == "duration" and values["batch_duration"] is None:
        raise TrialError(f"{path}: key 'batch_duration' is missing: batching duration needs the seconds of audio "
                         "a batch may hold")
    if values["batching"] == "fixed" and values["batch_duration"] is not None:
        raise TrialError(f"{path}: key 'batch_duration' ({values['batch_duration']}) is set, but 'batching' is "
                         "fixed (batch_size clips a batch); set batching: duration, or batch_duration: null")


DATA_CAP_KEYS = ("max_train_samples", "max_val_samples", "max_retasy_samples")


def _most(a: int | None, b: int | None) -> int | None:
    """The larger of two caps, None meaning every row."""
    return None if a is None or b is None else max(a, b)


def possible_values(trials_dir: str | Path, trial: Trial, overrides: Mapping[str, Any] | None) -> list[dict]:
    """The values a trial may train with: its own, or, extending the best of others, one set per
    candidate it may extend (its own file's values over the candidate's)."""
    if trial.best_of is None:
        return [trial.values]
    schema = load_schema(TRIAL_SCHEMA)
    chain = _chain(trials_dir, trial.name, schema)
    own = {key: value for key, value in chain[0][1].items() if key != "extends_best"}
    return [_resolve([(chain[0][0], own), *_chain(trials_dir, candidate, schema)], overrides, schema)
            for candidate in trial.best_of["trials"]]


def data_stage_caps(data: Mapping[str, Any], trials: Mapping[str, Trial], trials_dir: str | Path,
                    overrides: Mapping[str, Any] | None = None) -> dict[str, int | None]:
    """The caps the data stage prepares with (DATA_CAP_KEYS; None: every row).

    Each is the most that any trial may ask for, so that each trial can take its own cap from the
    prepared rows; an extends_best trial counts with every candidate it may extend, and a trial
    that does not blend RetaSy asks nothing of it. The config's data.<key> is a ceiling when it is
    a number (trials asking for more are named in a warning) and the cap when no trial asks.
    """
    caps: dict[str, int | None] = {}
    asked: dict[str, dict[str, int | None]] = {key: {} for key in DATA_CAP_KEYS}
    for name, trial in trials.items():
        for values in possible_values(trials_dir, trial, overrides):
            for key in DATA_CAP_KEYS:
                if key == "max_retasy_samples" and not values["include_retasy"]:
                    continue
                asked[key][name] = _most(asked[key].get(name, 0), values[key])
    for key in DATA_CAP_KEYS:
        ceiling = data[key]
        if not asked[key]:
            caps[key] = ceiling
            continue
        most = functools.reduce(_most, asked[key].values())
        caps[key] = most if ceiling is None else ceiling if most is None else min(most, ceiling)
        over = {name: cap for name, cap in asked[key].items() if ceiling is not None and (cap is None or cap > ceiling)}
        if over:
            wants = ", ".join(f"{name} ({'all rows' if cap is None else cap})" for name, cap in over.items())
            log.warning(f"config key 'data.{key}' ({ceiling}) is below what trial(s) {wants} ask for: the data stage "
                       f"prepares at most {ceiling} rows; set it to null to prepare what the trials ask for")
    return caps
