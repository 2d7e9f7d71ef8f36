"""The leaderboard: every model's benchmark beside the base model's, with paired comparisons.

One row per model (base first): recall, precision, SeqAcc (with bootstrap 95% intervals), WER, CER,
latency, size and parameters; for each trial, the samples it regressed on and recovered against the
base, the exact McNemar test on SeqAcc and the bootstrap interval of each metric's difference.
Every model is scored with the same (primary) matcher, which the leaderboard names.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from quranft.fileio import atomic_write_bytes, atomic_write_text, read_json, write_json
from quranft.scoring import METRICS, bootstrap_interval, compare


def _per_sample(benchmark: dict, matcher: str) -> dict[str, dict[str, float]]:
    return {row["id"]: {m: row["matchers"][matcher][m] for m in METRICS} for row in benchmark["rows"]}


def build(benchmarks: dict[str, dict], matcher: str | None = None) -> dict[str, Any]:
    """Leaderboard data from {model name: benchmark JSON}; the base model must be named 'base'."""
    if "base" not in benchmarks:
        raise ValueError("the leaderboard needs the base model's benchmark")
    matcher = matcher or benchmarks["base"]["matchers"]["primary"]
    corpora = {b["corpus"]["sha256"] for b in benchmarks.values()}
    if len(corpora) != 1:
        raise ValueError("the benchmarks were run on different corpora: they cannot be compared")
    base_scores = _per_sample(benchmarks["base"], matcher)
    rows = []
    for name in ["base", *sorted(n for n in benchmarks if n != "base")]:
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
        }
        if name != "base":
            row["versus_base"] = compare(base_scores, scores)
        rows.append(row)
    return {"matcher": matcher, "corpus": benchmarks["base"]["corpus"],
            "device": benchmarks["base"]["latency"]["device_name"], "rows": rows}


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def to_markdown(board: dict[str, Any]) -> str:
    lines = [
        "# Leaderboard",
        "",
        f"Verse identification on `{board['corpus']['path']}` ({board['corpus']['samples']} samples), "
        f"matcher `{board['matcher']}`, latency on {board['device']}. Intervals are bootstrap 95% CIs; "
        "p is the exact McNemar test of SeqAcc against the base model.",
        "",
        "| model | recall | precision | SeqAcc (95% CI) | WER | CER | latency median / p95 (s) | size (MB) | params | vs base |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in board["rows"]:
        low, high = row["ci95"]["sequence_accuracy"] or (None, None)
        versus = "—"
        if "versus_base" in row:
            v = row["versus_base"]
            delta = v["deltas"]["sequence_accuracy"]["delta"]
            versus = (f"{delta:+.1%} SeqAcc, {len(v['recovered'])} recovered / {len(v['regressed'])} regressed, "
                      f"p={v['mcnemar_p']:.3g}{' (significant)' if v['significant'] else ''}")
        latency = (f"{row['latency_median']:.3f} / {row['latency_p95']:.3f}"
                   if row["latency_median"] is not None else "n/a")
        lines.append(
            f"| {row['model']} | {_pct(row['recall'])} | {_pct(row['precision'])} | "
            f"{_pct(row['sequence_accuracy'])} ({_pct(low)}–{_pct(high)}) | {_pct(row['wer'])} | {_pct(row['cer'])} | "
            f"{latency} | {row['bytes'] / 1e6:.1f} | {row['parameters']:,} | {versus} |"
        )
    for row in board["rows"]:
        if row.get("versus_base") and (row["versus_base"]["regressed"] or row["versus_base"]["recovered"]):
            lines += ["", f"**{row['model']}** regressed on: {', '.join(row['versus_base']['regressed']) or 'none'}; "
                          f"recovered: {', '.join(row['versus_base']['recovered']) or 'none'}."]
    return "\n".join(lines) + "\n"


def plot(board: dict[str, Any], path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

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
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())


def write_leaderboard(benchmark_files: dict[str, str | Path], out_md: str | Path, out_json: str | Path,
                      out_png: str | Path, matcher: str | None = None) -> dict[str, Any]:
    board = build({name: read_json(path) for name, path in benchmark_files.items()}, matcher)
    write_json(out_json, board)
    atomic_write_text(out_md, to_markdown(board))
    plot(board, out_png)
    return board
