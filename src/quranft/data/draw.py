"""Which rows of a split the data stage reads, in what order: all of them in dataset order, or,
under a cap, a seeded random sample.

A cap keeps the first rows that pass the filters in reading order; read in dataset order, a split
sorted by reciter, surah or recording date would give a slice of a few of them (the validation
rows rank checkpoints, guard averaging and choose extends_best parents). So under a cap that may
bind, a local split is read in a seeded permutation of its rows, and a streamed one through a
seeded shuffle buffer (`data.shuffle_buffer_size` rows held at a time: a stream cannot be
permuted whole). The same seed and data read the same rows in the same order. Every row keeps its
number in the split (its default id and file name), however it was drawn.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

ROW_NUMBER = "__quranft_row__"  # a streamed row's number in the split, carried through the shuffle buffer


@dataclass
class Drawn:
    """The rows to read as (number in the split, row), and how they were drawn."""

    rows: Iterable[tuple[int, Mapping[str, Any]]]
    how: dict[str, Any]
    order: list[int] | None = None  # a local split's permutation: which rows a cap leaves unread


def split_seed(seed: int, split: str) -> int:
    """A seed of its own for each split (validation and train are not drawn alike)."""
    return (seed * 1_000_003 + zlib.crc32(split.encode())) % 2**32


def draw(opened, split: str, cap: int | None, seed: int, buffer_size: int) -> Drawn:
    """The rows of `opened` (a quranft.data.sources.OpenedSplit) to read under `cap`."""
    import datasets

    rows = opened.rows
    if cap is None or (opened.num_rows is not None and cap >= opened.num_rows):
        return Drawn(enumerate(rows), {"method": "dataset order", "why": "no cap below the split's rows"})
    seed = split_seed(seed, split)
    if isinstance(rows, datasets.Dataset):
        import numpy as np

        order = np.random.default_rng(seed).permutation(len(rows)).tolist()
        return Drawn(zip(order, rows.select(order)), {"method": "seeded permutation", "seed": seed}, order)
    numbered = rows.map(lambda row, number: {**row, ROW_NUMBER: number}, with_indices=True)
    shuffled = numbered.shuffle(seed=seed, buffer_size=buffer_size)
    return Drawn(((row.pop(ROW_NUMBER), row) for row in shuffled),
                 {"method": "shuffle buffer", "seed": seed, "buffer_size": buffer_size})
