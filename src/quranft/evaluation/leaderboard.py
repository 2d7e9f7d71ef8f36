"""The leaderboard: every model's benchmark beside the base model's, with paired comparisons.

One row per model, ranked by the compared matcher's SeqAcc (then recall, then precision; a trial
that ties with the base ranks below it, other ties go by name): recall, precision, SeqAcc (with
bootstrap 95% intervals), per-category figures, WER, CER, latency, size and parameters; for each
trial, the samples it regressed on and recovered against the base (with what each model heard and
predicted), the exact McNemar test on SeqAcc (raw, and Holm-adjusted across all the trials compared
with the base, which alone decides significance) and the bootstrap interval of each metric's
difference. The Markdown is quranft.evaluation.leaderboard_markdown's, one function per section.

A hybrid model's RNNT head (the benchmark JSON's `decoders.rnnt`) gets rows of its own, in a table
of its own (`decoders.rnnt` of the board): its text-matcher figures and WER/CER, each trial's RNNT
head compared with the base's RNNT head by the same tests, Holm-adjusted across these comparisons
only (a family apart from the CTC one). They appear where the base and the trial both have the
head; the model to ship is chosen on the CTC rows alone (quranft.evaluation.best).

Only benchmarks of the same corpus (content hash) scored by the same version of the compared
matcher (hash of its code) are compared, and RNNT heads only when decoded alike; anything else is
refused, naming the files. A trial that extends the best of others and was chosen by a benchmark
metric on this very corpus is marked: its comparison with the base is optimistic, since the
choice and the report use the same samples.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from quranft.errors import QuranftError
from quranft.evaluation.deployable import deployable_section
from quranft.evaluation.leaderboard_markdown import to_markdown
from quranft.evaluation.longform_board import longform_section
from quranft.evaluation.statistics import bootstrap_interval, compare, holm_adjust
from quranft.fileio import atomic_write_text, read_json, write_json
from quranft.matching.scoring import METRICS
from quranft.plots import pyplot, save_png

ALPHA = 0.05
RANKED_BY = ("sequence_accuracy", "recall", "precision")  # the compared matcher's figures, in this order


class LeaderboardError(QuranftError, ValueError):
    """Benchmarks that cannot be compared; the message names the files and what differs."""


def _per_sample(benchmark: dict, matcher: str) -> dict[str, dict[str, float]]:
    """Each recitation's scores (negatives, with no verse expected, are counted apart: false accepts)."""
    return {row["id"]: {m: row["matchers"][matcher][m] for m in METRICS} for row in benchmark["rows"]
            if row["expected"]}


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
    _same(benchmarks, files, "scorer versions (scorer.version: the benchmark's code, transcription and audio "
          "decoding included)", lambda b: (b.get("scorer") or {}).get("version"))


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


def _figures(benchmark: Mapping[str, Any], matcher: str) -> dict[str, Any]:
    """A benchmark's figures by one matcher: the metrics with their intervals, WER/CER, per
    category and the failures."""
    scores = _per_sample(benchmark, matcher)
    summary = benchmark["summary"][matcher]
    return {**{m: summary[m] for m in METRICS},
            "ci95": {m: bootstrap_interval([s[m] for s in scores.values()]) for m in METRICS},
            "wer": benchmark["transcripts"]["wer"], "cer": benchmark["transcripts"]["cer"],
            "per_category": summary.get("per_category", {}), "errors": summary.get("errors", {}),
            "negatives": summary.get("negatives"), "threshold": (benchmark.get("rejection") or {}).get("threshold")}


def _versus_base(rows: list[dict[str, Any]], benchmarks: Mapping[str, dict], matcher: str, alpha: float) -> int:
    """Each trial's row (all rows but the base's) compared with the base on every sample, its
    McNemar p Holm-adjusted across these comparisons; returns how many there are."""
    base_scores = _per_sample(benchmarks["base"], matcher)
    trials = [row for row in rows if row["model"] != "base"]
    for row in trials:
        versus = compare(base_scores, _per_sample(benchmarks[row["model"]], matcher))
        versus["samples"] = changed_samples(benchmarks["base"], benchmarks[row["model"]], versus, matcher)
        row["versus_base"] = versus
    for row, adjusted in zip(trials, holm_adjust([row["versus_base"]["mcnemar_p"] for row in trials])):
        row["versus_base"].update(mcnemar_p_holm=adjusted, significant=adjusted < alpha)
    return len(trials)


def decoder_view(benchmark: Mapping[str, Any], decoder: str) -> dict[str, Any]:
    """A benchmark seen through one of its other decoders (`decoders.<decoder>`): that head's rows,
    summary, transcript figures and decoding in place of the CTC head's."""
    block = benchmark["decoders"][decoder]
    return {**benchmark, "rows": block["rows"], "summary": block["summary"], "transcripts": block["transcripts"],
            "decoding": block["decoding"]}


def decoder_section(benchmarks: Mapping[str, dict], decoder: str, files: Mapping[str, str],
                    alpha: float) -> dict[str, Any] | None:
    """The rows of one other decoder (rnnt) of every model that has it, ranked, each trial's
    compared with the base's same decoder (Holm across these comparisons only); None when the
    base has no such decoder. `without` lists the models that have none."""
    views = {name: decoder_view(benchmark, decoder) for name, benchmark in benchmarks.items()
             if decoder in (benchmark.get("decoders") or {})}
    if "base" not in views:
        return None
    matchers = {view["decoders"][decoder]["matcher"] for view in views.values()}
    if len(matchers) > 1:
        raise LeaderboardError(f"the benchmarks' {decoder} heads were scored by different matchers "
                               f"({', '.join(sorted(matchers))}): re-run the older benchmarks")
    matcher = matchers.pop()
    check_comparable(views, matcher, files)
    _same(views, files, f"{decoder} decodings (decoders.{decoder}.decoding)",
          lambda view: json.dumps(view["decoding"], sort_keys=True))
    rows = [{"model": name, "decoder": decoder, **_figures(views[name], matcher)} for name in sorted(views)]
    comparisons = _versus_base(rows, views, matcher, alpha)
    return {"decoder": decoder, "matcher": matcher, "matcher_version": views["base"]["matchers"][matcher]["version"],
            "decoding": views["base"]["decoding"],
            "multiple_comparisons": {"method": "holm", "alpha": alpha, "comparisons": comparisons,
                                     "family": f"the {decoder} heads' comparisons with the base's"},
            "without": sorted(set(benchmarks) - set(views)), "rows": rank(rows)}


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
    rows = []
    for name in sorted(benchmarks):
        benchmark = benchmarks[name]
        row = {
            "model": name,
            **_figures(benchmark, matcher),
            "latency_median": benchmark["latency"]["median"],
            "latency_p95": benchmark["latency"]["p95"],
            "real_time_factor": benchmark["latency"]["real_time_factor"],
            "bytes": benchmark["model"]["bytes"],
            "parameters": benchmark["model"]["parameters"],
            "by_speaker": (benchmark.get("by_speaker") or {}).get(matcher),
        }
        if name in (choices or {}):
            row["selection"] = _selection(choices[name], corpus_sha256)
        rows.append(row)
    comparisons = _versus_base(rows, benchmarks, matcher, alpha)
    board = {"matcher": matcher, "matcher_version": benchmarks["base"]["matchers"][matcher]["version"],
             "corpus": benchmarks["base"]["corpus"], "device": benchmarks["base"]["latency"]["device_name"],
             "multiple_comparisons": {"method": "holm", "alpha": alpha, "comparisons": comparisons},
             "rows": rank(rows)}
    rnnt = decoder_section(benchmarks, "rnnt", files, alpha)
    if rnnt is not None:
        board["decoders"] = {"rnnt": rnnt}
    return board


def asr_section(results: Mapping[str, dict], files: Mapping[str, str]) -> dict[str, Any]:
    """Every model's ASR figures for the leaderboard, base first (and its RNNT head's, where it has
    one, under `decoders.rnnt`); refused (naming the files) when the models were not scored on the
    same test set."""
    def test_set(result: dict) -> str:
        """The test set's content hash (its manifest and every clip)."""
        return result["test_set"].get("sha256", "none recorded")

    found = {test_set(result) for result in results.values()}
    if len(found) > 1:
        listed = "; ".join(f"{files[name]}: {test_set(result)}" for name, result in results.items())
        raise LeaderboardError(f"the ASR benchmarks were not scored on the same test set: {listed}")
    scorers = {(result.get("scorer") or {}).get("version") for result in results.values()}
    if len(scorers) > 1:
        listed = "; ".join(f"{files[name]}: {(result.get('scorer') or {}).get('version')}"
                           for name, result in results.items())
        raise LeaderboardError(f"the ASR benchmarks were scored by different code (scorer.version): {listed}. "
                               "Re-run the older ones.")
    names = sorted(results, key=lambda name: (name != "base", name))
    first = results[names[0]]["test_set"]
    section = {"test_set": {key: first[key] for key in ("dataset", "kept", "by_subset", "hours", "sha256")},
               "rows": [{"model": name, "summary": results[name]["summary"]} for name in names]}
    rnnt = [{"model": name, "summary": results[name]["decoders"]["rnnt"]["summary"]} for name in names
            if "rnnt" in (results[name].get("decoders") or {})]
    if rnnt:  # each model's RNNT head, in rows of its own
        section["decoders"] = {"rnnt": rnnt}
    return section


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
                      export_files: Mapping[str, Mapping[str, str | Path]] | None = None,
                      longform_files: Mapping[str, str | Path] | None = None,
                      max_seqacc_loss: float | None = None,
                      browser_files: Mapping[str, str | Path] | None = None) -> dict[str, Any]:
    """Also the ASR benchmark's table when `asr_files` (results/<model>/asr_benchmark.json) are
    given, the deployable table when `export_files` ({model: {format: the export's benchmark}})
    are (each export held to `max_seqacc_loss`, config export.max_seqacc_loss; its browser check's
    figures beside it where `browser_files`, {model: browser.json}, has the model), the
    continuous-recitation table when `longform_files` ({model: longform.json}) are, and a link to
    the trials' joint validation WER plot (`validation_curves`, recorded relative to the
    Markdown's folder)."""
    benchmarks = {name: read_json(path) for name, path in benchmark_files.items()}
    board = build(benchmarks, matcher, benchmark_files,
                  {name: read_json(path) for name, path in (choice_files or {}).items()})
    if asr_files:
        board["asr"] = asr_section({name: read_json(path) for name, path in asr_files.items()},
                                   {name: str(path) for name, path in asr_files.items()})
    if export_files:
        if max_seqacc_loss is None:
            raise ValueError("the exports' benchmarks need max_seqacc_loss, the margin each export is held to")
        board["deployable"] = deployable_section(
            {row["model"]: benchmarks[row["model"]] for row in board["rows"]},
            {model: {fmt: read_json(path) for fmt, path in formats.items()} for model, formats in export_files.items()},
            board["matcher"], max_seqacc_loss, {(model, fmt): str(path) for model, formats in export_files.items()
                                                for fmt, path in formats.items()},
            {model: read_json(path) for model, path in (browser_files or {}).items()})
    if longform_files:
        board["longform"] = longform_section({name: read_json(path) for name, path in longform_files.items()},
                                             {name: str(path) for name, path in longform_files.items()}, board,
                                             max_seqacc_loss)
    if validation_curves:
        board["validation_curves"] = Path(os.path.relpath(validation_curves, Path(out_md).parent)).as_posix()
    write_json(out_json, board)
    atomic_write_text(out_md, to_markdown(board))
    plot(board, out_png)
    return board
