"""Training curves: loss and validation WER by step, from Lightning's metrics.csv."""

from __future__ import annotations

import csv
from pathlib import Path

from quranft.plots import pyplot, save_png


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
    for name in ("val_wer_ctc", "val_wer"):
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
