"""The leaderboard: every model's benchmark beside the base model's, with paired comparisons.

One row per model, ranked by the compared matcher's SeqAcc (then recall, then precision; a trial
that ties with the base ranks below it, other ties go by name): recall, precision, SeqAcc (with
bootstrap 95% intervals), per-category figures, WER, CER, latency, size and parameters; for each
trial, the samples it regressed on and recovered against the base (with what each model heard and
predicted), the exact McNemar test on SeqAcc (raw, and Holm-adjusted across all the trials compared
with the base, which alone decides significance) and the bootstrap interval of each metric's
difference. The Markdown is quranft.evaluation.leaderboard_markdown's, one function per section.

Only benchmarks of the same corpus (content hash) scored by the same version of the compared
matcher (hash of its code) are compared; anything else is refused, naming the files. A trial that
extends the best of others and was chosen by a benchmark metric on this very corpus is marked: its
comparison with the base is optimistic, since the choice and the report use the same samples.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from quranft.errors import QuranftError
from quranft.evaluation.deployable import deployable_section
from quranft.evaluation.leaderboard_markdown import to_markdown
from quranft.evaluation.statistics import bootstrap_interval, compare, holm_adjust
from quranft.fileio import atomic_write_text, read_json, write_json
from quranft.matching.scoring import METRICS
from quranft.plots import pyplot, save_png

ALPHA = 0.05
RANKED_BY = ("sequence_accuracy", "recall", "precision")  # the compared matcher's figures, in this order


class LeaderboardError(QuranftError, ValueError):
    """Benchmarks that cannot be compared; the message names the files and what differs."""


def _per_sample(benchmark: dict, matcher: str) -> dict[str, dict[str, float]]:
    return {row["id"]: {m: row["matchers"][matcher][m] for m in METRICS} for row in benchmark["rows"]}


def _same(benchmarks: Mapping[str, dict], files: Mapping[str, str], what: str, value: Callable[[dict], Any]) -> None:
    groups: dict[Any, list[str]] = {}
    for name, benchmark in benchmarks.items():
        groups.setdefault(value(benchmark), []).append(files[name])
    if len(groups) > 1:
        listed = "; ".join(f"{', '.join(names)} have {found}" for found, names in groups.items())
        raise LeaderboardError(f"the benchmarks cannot be compared: their {what} differ: {listed}. "
                               "Re-run the older benchmarks so that all are scored alike.")


def check_comparable(benchmarks: Mapping[str, dict], matcher: str, files: Mapping[str, str]) -> None:
    """Refuse benchmarks of different corpora, or scored by different versions of `matcher`."""
    for name, benchmark in benchmarks.items():
        if matcher not in benchmark["matchers"] or matcher not in benchmark["summary"]:
            raise LeaderboardError(f"{files[name]}: has no scores of the {matcher} matcher")
    _same(benchmarks, files, "corpus hashes (corpus.sha256)", lambda b: b["corpus"]["sha256"])
    _same(benchmarks, files, f"{matcher} matcher versions (matchers.{matcher}.version)",
          lambda b: b["matchers"][matcher].get("version"))


def _selection(choice: Mapping[str, Any], corpus_sha256: str) -> dict[str, Any]:
    """How an extends_best trial's parent was chosen, and whether on this corpus."""
    return {"metric": choice["metric"], "chosen": choice["chosen"], "candidates": choice["candidates"],
            "selected_on": choice["selected_on"],
            "selected_on_this_corpus": choice["selected_on"] == "benchmark"
            and choice.get("corpus_sha256") == corpus_sha256}


def rank_key(row: Mapping[str, Any]) -> tuple:
    """Better first: SeqAcc, then recall, then precision; the base before a trial that ties with
    it (a tie is no gain), then by name."""
    figures = tuple(-(row[m] if row[m] is not None else -1.0) for m in RANKED_BY)
    return (*figures, row["model"] != "base", row["model"])


def rank(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows` in rank order, each with its `rank` (competition ranking: equal figures, equal rank)."""
    ranked = sorted(rows, key=rank_key)
    for position, row in enumerate(ranked):
        previous = ranked[position - 1] if position else None
        tied = previous is not None and rank_key(previous)[:len(RANKED_BY)] == rank_key(row)[:len(RANKED_BY)]
        row["rank"] = previous["rank"] if tied else position + 1
    return ranked


def _heard(row: Mapping[str, Any], matcher: str) -> dict[str, Any]:
    """What a model heard in one sample and which verses the matcher made of it."""
    scored = row["matchers"][matcher]
    return {"transcript": row.get("transcript"), "predicted": scored.get("predicted", []),
            "error": row.get("error") or scored.get("error")}


def changed_samples(base: Mapping[str, Any], trial: Mapping[str, Any], versus: Mapping[str, Any],
                    matcher: str) -> list[dict[str, Any]]:
    """The samples a trial regressed on, then those it recovered: id, category, expected verses,
    and what the base and the trial each heard and predicted."""
    base_rows = {row["id"]: row for row in base["rows"]}
    trial_rows = {row["id"]: row for row in trial["rows"]}
    return [{"id": sample, "change": change, "category": base_rows[sample].get("category"),
             "expected": base_rows[sample].get("expected", []),
             "base": _heard(base_rows[sample], matcher), "trial": _heard(trial_rows[sample], matcher)}
            for change in ("regressed", "recovered") for sample in versus[change]]


def build(benchmarks: dict[str, dict], matcher: str | None = None, files: Mapping[str, str | Path] | None = None,
          choices: Mapping[str, Mapping[str, Any]] | None = None, alpha: float = ALPHA) -> dict[str, Any]:
    """Leaderboard data from {model name: benchmark JSON}; the base model must be named 'base'.

    `files` names each benchmark's file in errors; `choices` holds the extends_best choices
    (results/<trial>/extends_best.json) by trial name.
    """
    if "base" not in benchmarks:
        raise LeaderboardError("the leaderboard needs the base model's benchmark")
    files = {name: str((files or {}).get(name, f"the benchmark of {name}")) for name in benchmarks}
    matcher = matcher or benchmarks["base"]["matchers"]["primary"]
    check_comparable(benchmarks, matcher, files)
    corpus_sha256 = benchmarks["base"]["corpus"]["sha256"]
    base_scores = _per_sample(benchmarks["base"], matcher)
    rows = []
    for name in sorted(benchmarks):
        benchmark = benchmarks[name]
        scores = _per_sample(benchmark, matcher)
        summary = benchmark["summary"][matcher]
        row = {
            "model": name,
            **{m: summary[m] for m in METRICS},
            "ci95": {m: bootstrap_interval([s[m] for s in scores.values()]) for m in METRICS},
            "wer": benchmark["transcripts"]["wer"],
            "cer": benchmark["transcripts"]["cer"],
            "latency_median": benchmark["latency"]["median"],
            "latency_p95": benchmark["latency"]["p95"],
            "real_time_factor": benchmark["latency"]["real_time_factor"],
            "bytes": benchmark["model"]["bytes"],
            "parameters": benchmark["model"]["parameters"],
            "per_category": summary.get("per_category", {}),
            "errors": summary.get("errors", {}),
            "by_speaker": (benchmark.get("by_speaker") or {}).get(matcher),
        }
        if name in (choices or {}):
            row["selection"] = _selection(choices[name], corpus_sha256)
        if name != "base":
            row["versus_base"] = compare(base_scores, scores)
            row["versus_base"]["samples"] = changed_samples(benchmarks["base"], benchmark, row["versus_base"], matcher)
        rows.append(row)
    versus = [row["versus_base"] for row in rows if "versus_base" in row]
    for comparison, adjusted in zip(versus, holm_adjust([v["mcnemar_p"] for v in versus])):
        comparison.update(mcnemar_p_holm=adjusted, significant=adjusted < alpha)
    return {"matcher": matcher, "matcher_version": benchmarks["base"]["matchers"][matcher]["version"],
            "corpus": benchmarks["base"]["corpus"], "device": benchmarks["base"]["latency"]["device_name"],
            "multiple_comparisons": {"method": "holm", "alpha": alpha, "comparisons": len(versus)},
            "rows": rank(rows)}


def asr_section(results: Mapping[str, dict], files: Mapping[str, str]) -> dict[str, Any]:
    """Every model's ASR figures for the leaderboard, base first; refused (naming the files) when
    the models were not scored on the same test set."""
    def test_set(result: dict) -> str:
        """The test set's content hash (its manifest and every clip)."""
        return result["test_set"].get("sha256", "none recorded")

    found = {test_set(result) for result in results.values()}
    if len(found) > 1:
        listed = "; ".join(f"{files[name]}: {test_set(result)}" for name, result in results.items())
        raise LeaderboardError(f"the ASR benchmarks were not scored on the same test set: {listed}")
    names = sorted(results, key=lambda name: (name != "base", name))
    first = results[names[0]]["test_set"]
    return {"test_set": {key: first[key] for key in ("dataset", "kept", "by_subset", "hours", "sha256")},
            "rows": [{"model": name, "summary": results[name]["summary"]} for name in names]}


def plot(board: dict[str, Any], path: str | Path) -> None:
    plt = pyplot()
    models = [row["model"] for row in board["rows"]]
    positions = np.arange(len(models))
    width = 0.27
    figure, axis = plt.subplots(figsize=(max(6, 1.2 * len(models) + 2), 4))
    for offset, metric in zip((-width, 0, width), METRICS):
        values = [row[metric] or 0 for row in board["rows"]]
        errors = [[max(0, v - (row["ci95"][metric] or (v, v))[0]) for v, row in zip(values, board["rows"])],
                  [max(0, (row["ci95"][metric] or (v, v))[1] - v) for v, row in zip(values, board["rows"])]]
        axis.bar(positions + offset, values, width, yerr=errors, capsize=3, label=metric)
    axis.set_xticks(positions, models)
    axis.set_ylim(0, 1.05)
    axis.set_ylabel("share of samples")
    axis.set_title(f"Verse identification ({board['matcher']} matcher), 95% bootstrap CIs")
    axis.legend(loc="lower right")
    axis.grid(axis="y", alpha=0.3)
    save_png(figure, path)


def write_leaderboard(benchmark_files: dict[str, str | Path], out_md: str | Path, out_json: str | Path,
                      out_png: str | Path, matcher: str | None = None,
                      choice_files: Mapping[str, str | Path] | None = None,
                      asr_files: Mapping[str, str | Path] | None = None,
                      validation_curves: str | Path | None = None,
                      export_files: Mapping[str, Mapping[str, str | Path]] | None = None) -> dict[str, Any]:
    """Also the ASR benchmark's table when `asr_files` (results/<model>/asr_benchmark.json) are
    given, the deployable table when `export_files` ({model: {format: the export's benchmark}})
    are, and a link to the trials' joint validation WER plot (`validation_curves`, recorded
    relative to the Markdown's folder)."""
    benchmarks = {name: read_json(path) for name, path in benchmark_files.items()}
    board = build(benchmarks, matcher, benchmark_files,
                  {name: read_json(path) for name, path in (choice_files or {}).items()})
    if asr_files:
        board["asr"] = asr_section({name: read_json(path) for name, path in asr_files.items()},
                                   {name: str(path) for name, path in asr_files.items()})
    if export_files:
        board["deployable"] = deployable_section(
            {row["model"]: benchmarks[row["model"]] for row in board["rows"]},
            {model: {fmt: read_json(path) for fmt, path in formats.items()} for model, formats in export_files.items()},
            board["matcher"], {(model, fmt): str(path) for model, formats in export_files.items()
                               for fmt, path in formats.items()})
    if validation_curves:
        board["validation_curves"] = Path(os.path.relpath(validation_curves, Path(out_md).parent)).as_posix()
    write_json(out_json, board)
    atomic_write_text(out_md, to_markdown(board))
    plot(board, out_png)
    return board
