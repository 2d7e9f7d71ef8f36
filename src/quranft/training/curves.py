"""Training curves: loss and validation WER by step, from Lightning's metrics.csv; one trial's, and
every trial's validation WER on one plot."""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping
from itertools import cycle
from pathlib import Path

from quranft.plots import pyplot, save_png

log = logging.getLogger("quranft")

METRICS_CSV = Path("logs") / "csv" / "metrics.csv"  # Lightning's CSV log, in a trial's folder
# The CTC head's validation WER (which ranks the checkpoints), else the model's own.
VALIDATION_WER = ("val_wer_ctc", "val_wer")


def read_metrics(path: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Every metric's (step, value) points; empty cells (other metrics' rows) are skipped."""
    series: dict[str, list[tuple[int, float]]] = {}
    with open(path, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            step = row.get("step")
            if not step:
                continue
            for name, value in row.items():
                if name in ("step", "epoch") or value in ("", None):
                    continue
                series.setdefault(name, []).append((int(float(step)), float(value)))
    return series


def plot_training_curves(metrics_csv: str | Path, out_png: str | Path, title: str) -> None:
    plt = pyplot()
    series = read_metrics(metrics_csv) if Path(metrics_csv).exists() else {}
    figure, (loss_axis, wer_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for name in ("train_loss", "val_loss"):
        if name in series:
            steps, values = zip(*sorted(series[name]))
            loss_axis.plot(steps, values, label=name, marker="." if name == "val_loss" else None)
    loss_axis.set(xlabel="step", ylabel="loss", title="loss")
    for name in VALIDATION_WER:
        if name in series:
            steps, values = zip(*sorted(series[name]))
            wer_axis.plot(steps, values, label=name, marker="o")
    wer_axis.set(xlabel="step", ylabel="WER", title="validation WER")
    for axis in (loss_axis, wer_axis):
        if axis.has_data():
            axis.legend()
        axis.grid(alpha=0.3)
    figure.suptitle(title)
    save_png(figure, out_png)


def plot_validation_wer(metrics_csvs: Mapping[str, str | Path], out_png: str | Path) -> dict[str, list]:
    """Every trial's validation WER by step on one axis, from each trial's metrics.csv (by trial
    name); returns the points drawn. A trial whose file is missing or holds no validation yet is
    left out, with a warning."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(8, 4.5))
    drawn: dict[str, list] = {}
    styles = cycle([(marker, line) for line in ("-", "--", ":") for marker in "osD^vP"])
    for name, path in metrics_csvs.items():
        series = read_metrics(path) if Path(path).is_file() else {}
        metric = next((m for m in VALIDATION_WER if m in series), None)
        if metric is None:
            log.warning("%s: no validation WER in %s; left out of the plot", name, path)
            continue
        drawn[name] = sorted(series[metric])
        marker, line = next(styles)
        steps, values = zip(*drawn[name])
        axis.plot(steps, values, marker=marker, linestyle=line, label=name if metric == VALIDATION_WER[0]
                  else f"{name} ({metric})")
    axis.set(xlabel="optimizer step", ylabel="validation WER", title="Validation WER of every trial")
    if drawn:
        axis.legend()
    axis.grid(alpha=0.3)
    save_png(figure, out_png)
    return drawn
