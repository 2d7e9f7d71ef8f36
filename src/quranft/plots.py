"""Figures written as PNG files: matplotlib without a display, saved atomically."""

from __future__ import annotations

import io
from pathlib import Path

from quranft.fileio import atomic_write_bytes


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(figure, path: str | Path, dpi: int = 100) -> None:
    """Write `figure` to `path` (atomically) and close it."""
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=dpi)
    pyplot().close(figure)
    atomic_write_bytes(path, buffer.getvalue())
