"""The leaderboard's deployable table: each model's .nemo beside its ONNX exports.

For every model and format (.nemo, onnx fp32, int8, int4): the file's size, latency median / p95
(path to verses, one clip at a time, on the benchmark's threads), the primary matcher's SeqAcc and
recall, and the export's bound: the upper end of the 95% confidence interval of its SeqAcc loss
against the same model's .nemo, paired on the corpus's samples (Tango's score interval,
evaluation.statistics.non_inferiority), and whether it is fit to ship, that is whether the bound is
below the margin `max_seqacc_loss` (config export.max_seqacc_loss). A McNemar p, a test of
difference, would not do: no difference found on 87 clips is no evidence that there is none, and
the bound says how large a loss the corpus still allows. A corpus too small to show the margin at
all (every sample agreeing still leaves a bound of z^2 / (n + z^2)) is said so, with the samples
it would take.

An export's benchmark must be of the same corpus and matcher version as the .nemo's; anything else
is refused, naming the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from quranft.errors import QuranftError
from quranft.evaluation.figures import pct
from quranft.evaluation.statistics import non_inferiority

FORMATS = ("fp32", "int8", "int4")


class DeployableError(QuranftError, ValueError):
    """An export's benchmark that cannot be set beside its .nemo's; the message names the file."""


def seqacc_hits(benchmark: Mapping[str, Any], matcher: str) -> dict[str, int]:
    """Each recitation's SeqAcc hit (0 or 1) by sample id; the negatives (no verse expected) are
    not among them, as they are not in SeqAcc."""
    return {row["id"]: int(row["matchers"][matcher]["sequence_accuracy"] == 1) for row in benchmark["rows"]
            if row["expected"]}


def bound(reference: Mapping[str, int], other: Mapping[str, int], max_seqacc_loss: float) -> dict[str, Any]:
    """The non-inferiority record (statistics.non_inferiority) of `other`'s hits against
    `reference`'s, the same sample ids, with the ids of the samples it regressed and recovered."""
    if set(reference) != set(other):
        raise ValueError("the two benchmarks were not run on the same samples")
    ids = sorted(reference)
    record = non_inferiority([reference[i] for i in ids], [other[i] for i in ids], max_seqacc_loss)
    record.update(regressed=[i for i in ids if reference[i] and not other[i]],
                  recovered=[i for i in ids if other[i] and not reference[i]])
    return record


def browser_bound(nemo: Mapping[str, Any], browser: Mapping[str, Any], fmt: str, matcher: str,
                  max_seqacc_loss: float) -> dict[str, Any]:
    """The bound of an export as the browser runs it (browser.json, rule browser_check: its
    format `fmt`, scored by the primary matcher) against the .nemo's benchmark: what ships judged
    in the runtime it ships to. The browser check must be of the .nemo's corpus and matcher."""
    if browser["corpus"]["sha256"] != nemo["corpus"]["sha256"]:
        raise DeployableError(f"the browser check of {browser['model']}: run on another corpus than its .nemo's "
                              "benchmark; re-run it")
    if browser["matchers"]["primary"] != matcher:
        raise DeployableError(f"the browser check of {browser['model']}: scored by the {browser['matchers']['primary']} "
                              f"matcher, the leaderboard by {matcher}")
    hits = seqacc_hits(nemo, matcher)
    rows = browser["formats"][fmt]["rows"]
    return bound(hits, {i: int(rows[i]["sequence_accuracy"] == 1) for i in hits if i in rows}, max_seqacc_loss)


def _row(model: str, fmt: str, benchmark: Mapping[str, Any], matcher: str) -> dict[str, Any]:
    summary = benchmark["summary"][matcher]
    return {"model": model, "format": fmt, "file": benchmark["model"]["file"], "bytes": benchmark["model"]["bytes"],
            "latency_median": benchmark["latency"]["median"], "latency_p95": benchmark["latency"]["p95"],
            "threads": benchmark["latency"].get("threads"), "sequence_accuracy": summary["sequence_accuracy"],
            "recall": summary["recall"], "wer": benchmark["transcripts"]["wer"],
            "negatives": summary.get("negatives"), "threshold": (benchmark.get("rejection") or {}).get("threshold")}


def _check(nemo: Mapping[str, Any], export: Mapping[str, Any], matcher: str, file: str) -> None:
    if export["corpus"]["sha256"] != nemo["corpus"]["sha256"]:
        raise DeployableError(f"{file}: benchmarked on another corpus than its model's .nemo; re-run it")
    if (export.get("scorer") or {}).get("version") != (nemo.get("scorer") or {}).get("version"):
        raise DeployableError(f"{file}: scored by other benchmark code than its model's .nemo; re-run it")
    if export["matchers"].get(matcher, {}).get("version") != nemo["matchers"][matcher]["version"]:
        raise DeployableError(f"{file}: scored by another version of the {matcher} matcher than its model's "
                              ".nemo; re-run it")


def browser_figures(nemo: Mapping[str, Any], browser: Mapping[str, Any], fmt: str, matcher: str,
                    max_seqacc_loss: float) -> dict[str, Any]:
    """An export's figures as the browser computed them (browser.json): latency, load time, SeqAcc
    and recall by the benchmark's matchers, the share of transcripts as Python's, and its bound."""
    record = browser["formats"][fmt]
    summary = record["summary"][matcher]
    return {"latency_median_ms": record["latency"]["median_ms"], "latency_p90_ms": record["latency"]["p90_ms"],
            "load_ms": record["load"]["ms"], "sequence_accuracy": summary["sequence_accuracy"],
            "recall": summary["recall"], "identical_share": record["parity"]["identical_share"],
            "runtime": {key: browser["runtime"].get(key) for key in ("chromium", "onnxruntime_web", "backend",
                                                                      "threads")},
            "bound": browser_bound(nemo, browser, fmt, matcher, max_seqacc_loss)}


def deployable_section(benchmarks: Mapping[str, Mapping[str, Any]],
                       exports: Mapping[str, Mapping[str, Mapping[str, Any]]], matcher: str, max_seqacc_loss: float,
                       files: Mapping[tuple[str, str], str] | None = None,
                       browser: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """{"rows": [...]} for the models in `benchmarks` ({model: .nemo benchmark}) and their
    `exports` ({model: {format: export benchmark}}), models in the order given; each export's row
    has its `bound` (bound()) against `max_seqacc_loss`, and where the model's browser check
    (`browser`: {model: browser.json}) ran the format, its `browser` figures with their own bound:
    the row is `fit` when both bounds are."""
    rows = []
    for model, nemo in benchmarks.items():
        rows.append(_row(model, "nemo", nemo, matcher))
        hits = seqacc_hits(nemo, matcher)
        for fmt in [f for f in FORMATS if f in exports.get(model, {})]:
            export = exports[model][fmt]
            file = (files or {}).get((model, fmt), f"the {fmt} export's benchmark of {model}")
            _check(nemo, export, matcher, file)
            row = _row(model, fmt, export, matcher)
            row["bound"] = bound(hits, seqacc_hits(export, matcher), max_seqacc_loss)
            checked = (browser or {}).get(model)
            if checked and fmt in checked["formats"]:
                row["browser"] = browser_figures(nemo, checked, fmt, matcher, max_seqacc_loss)
            row["fit"] = row["bound"]["fit"] and row.get("browser", {}).get("bound", {}).get("fit", True)
            rows.append(row)
    return {"matcher": matcher, "max_seqacc_loss": max_seqacc_loss, "rows": rows}


def false_accepts(row: Mapping[str, Any]) -> str:
    """The negatives named a verse, of how many: "1/7"; "—" without negatives."""
    negatives = row.get("negatives") or {}
    return f"{negatives['false_accepts']}/{negatives['samples']}" if negatives.get("samples") else "—"


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def points(value: float) -> str:
    """A share as percentage points with one decimal: 0.0423 -> "4.2"."""
    return f"{100 * value:.1f}"


def bound_cell(record: Mapping[str, Any]) -> str:
    """An export's bound, fit or not, and its regressed / recovered samples: "4.2 (no; 0 / 0)"."""
    return (f"{points(record['bound'])} ({'yes' if record['fit'] else 'no'}; {len(record['regressed'])} / "
            f"{len(record['recovered'])})")


def _unresolvable(section: Mapping[str, Any]) -> list[str]:
    records = [row["bound"] for row in section["rows"] if "bound" in row and not row["bound"]["resolvable"]]
    if not records:
        return []
    least = min(records, key=lambda r: r["least_bound"])
    return [f"No export can be shown fit on this corpus: with all {least['samples']} recitations agreeing with "
            f"the `.nemo`, the bound is still {points(least['least_bound'])} points, not below the margin of "
            f"{points(section['max_seqacc_loss'])}; it takes at least {least['samples_needed']} recitations "
            "(export.max_seqacc_loss, docs/benchmark.md).", ""]


def deployable_markdown(section: Mapping[str, Any]) -> list[str]:
    """The table, one row per model and format."""
    if not any(row["format"] != "nemo" for row in section["rows"]):
        return []
    lines = ["", "## Deployable", "",
             f"Each model as trained (`.nemo`, PyTorch) and as exported (ONNX on onnxruntime, raw audio in), on the "
             f"same corpus and matcher (`{section['matcher']}`); latency per clip from its path to its verses. "
             "*bound*: the upper end of the 95% confidence interval of the export's SeqAcc loss against its `.nemo`, "
             "in points (Tango's score interval, paired on the recitations); *fit* when it is below the margin, "
             f"{points(section['max_seqacc_loss'])} points (export.max_seqacc_loss); then the recitations it "
             "regressed / recovered. *false accepts*: negatives named a verse, at the format's own confidence "
             "threshold.", "", *_unresolvable(section),
             "*browser*: the same file run by onnxruntime-web (WASM, one thread) in headless Chromium on the same "
             "clips (rule browser_check, export.browser_models): the graph's latency per clip, median / p90, its "
             "SeqAcc by the same matcher, and its own bound against the `.nemo`; a format is fit to ship when "
             "both bounds are.", "",
             "| model | format | size (MB) | latency median / p95 (s) | SeqAcc | recall | false accepts | "
             "bound (fit; regressed / recovered) | browser latency (ms) | browser SeqAcc | browser bound |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in section["rows"]:
        bound_text = "—" if row["format"] == "nemo" else bound_cell(row["bound"])
        checked = row.get("browser")
        in_browser = (f"{checked['latency_median_ms']:.0f} / {checked['latency_p90_ms']:.0f} | "
                      f"{pct(checked['sequence_accuracy'])} | {bound_cell(checked['bound'])}") if checked else "— | — | —"
        lines.append(f"| {row['model']} | {row['format']} | {row['bytes'] / 1e6:.1f} | "
                     f"{_seconds(row['latency_median'])} / {_seconds(row['latency_p95'])} | "
                     f"{pct(row['sequence_accuracy'])} | {pct(row['recall'])} | {false_accepts(row)} | {bound_text} | "
                     f"{in_browser} |")
    return [*lines, ""]
