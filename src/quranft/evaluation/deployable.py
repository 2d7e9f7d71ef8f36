"""The leaderboard's deployable table: each model's .nemo beside its ONNX exports.

For every model and format (.nemo, onnx fp32, int8, int4): the file's size, latency median / p95
(path to verses, one clip at a time, on the benchmark's threads), the primary matcher's SeqAcc and
recall, and how many samples' SeqAcc differ from the same model's .nemo, with the exact McNemar
test against it (raw p: each export is compared with its own .nemo only, not chosen among others).

An export's benchmark must be of the same corpus and matcher version as the .nemo's; anything else
is refused, naming the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from quranft.errors import QuranftError
from quranft.evaluation.figures import pct
from quranft.evaluation.statistics import compare

FORMATS = ("fp32", "int8", "int4")


class DeployableError(QuranftError, ValueError):
    """An export's benchmark that cannot be set beside its .nemo's; the message names the file."""


def _scores(benchmark: Mapping[str, Any], matcher: str) -> dict[str, dict[str, float]]:
    return {row["id"]: row["matchers"][matcher] for row in benchmark["rows"] if row["expected"]}


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


def deployable_section(benchmarks: Mapping[str, Mapping[str, Any]],
                       exports: Mapping[str, Mapping[str, Mapping[str, Any]]], matcher: str,
                       files: Mapping[tuple[str, str], str] | None = None) -> dict[str, Any]:
    """{"rows": [...]} for the models in `benchmarks` ({model: .nemo benchmark}) and their
    `exports` ({model: {format: export benchmark}}), models in the order given."""
    rows = []
    for model, nemo in benchmarks.items():
        rows.append(_row(model, "nemo", nemo, matcher))
        base_scores = _scores(nemo, matcher)
        for fmt in [f for f in FORMATS if f in exports.get(model, {})]:
            export = exports[model][fmt]
            file = (files or {}).get((model, fmt), f"the {fmt} export's benchmark of {model}")
            _check(nemo, export, matcher, file)
            row = _row(model, fmt, export, matcher)
            comparison = compare(base_scores, _scores(export, matcher))
            row.update(differ=len(comparison["regressed"]) + len(comparison["recovered"]),
                       regressed=comparison["regressed"], recovered=comparison["recovered"],
                       mcnemar_p=comparison["mcnemar_p"])
            rows.append(row)
    return {"matcher": matcher, "rows": rows}


def false_accepts(row: Mapping[str, Any]) -> str:
    """The negatives named a verse, of how many: "1/7"; "—" without negatives."""
    negatives = row.get("negatives") or {}
    return f"{negatives['false_accepts']}/{negatives['samples']}" if negatives.get("samples") else "—"


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def deployable_markdown(section: Mapping[str, Any]) -> list[str]:
    """The table, one row per model and format."""
    if not any(row["format"] != "nemo" for row in section["rows"]):
        return []
    lines = ["", "## Deployable", "",
             f"Each model as trained (`.nemo`, PyTorch) and as exported (ONNX on onnxruntime, raw audio in), on the "
             f"same corpus and matcher (`{section['matcher']}`); latency per clip from its path to its verses. "
             "*differ*: samples whose SeqAcc is not the `.nemo`'s (McNemar p against it); *false accepts*: "
             "negatives named a verse, at the format's own confidence threshold.", "",
             "| model | format | size (MB) | latency median / p95 (s) | SeqAcc | recall | false accepts | "
             "differ from .nemo |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in section["rows"]:
        differ = "—" if row["format"] == "nemo" else f"{row['differ']} (p={row['mcnemar_p']:.3g})"
        lines.append(f"| {row['model']} | {row['format']} | {row['bytes'] / 1e6:.1f} | "
                     f"{_seconds(row['latency_median'])} / {_seconds(row['latency_p95'])} | "
                     f"{pct(row['sequence_accuracy'])} | {pct(row['recall'])} | {false_accepts(row)} | {differ} |")
    return [*lines, ""]
