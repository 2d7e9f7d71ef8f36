"""Progress reporting: a bar in a terminal, a plain line every tenth of the work in a log file."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger("quranft")


def progress(items: Iterable[T], total: int | None, desc: str, unit: str = "it") -> Iterator[T]:
    if sys.stderr.isatty():
        from tqdm import tqdm

        yield from tqdm(items, total=total, desc=desc, unit=unit, dynamic_ncols=True)
        return
    step = max(1, total // 10) if total else None
    start = time.monotonic()
    done = 0
    for item in items:
        yield item
        done += 1
        if (step and done % step == 0) or (step is None and done % 100 == 0):
            rate = done / max(time.monotonic() - start, 1e-9)
            of = f"/{total}" if total else ""
            log.info("%s: %d%s %s (%.1f %s/s)", desc, done, of, unit, rate, unit)
    log.info("%s: done, %d %s in %.1f s", desc, done, unit, time.monotonic() - start)
