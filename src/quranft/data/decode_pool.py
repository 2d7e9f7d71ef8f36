"""The data stage's per-row work, done in worker processes: decode, down-mix, resample, duration
filter, content hash, leakage check, and writing the kept row's audio file.

A worker writes each kept row's file itself and sends back only a verdict, a duration and a hash,
so that the main process, which reads the rows and keeps them in order, never handles decoded or
encoded audio: with it, two workers on two cores did no better than one.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from quranft.data.audio import content_sha1, decode_clip, pcm16, write_clip
from quranft.data.benchmark_index import read_index
from quranft.data.fingerprint import FingerprintIndex, fingerprint
from quranft.errors import QuranftError

log = logging.getLogger("quranft")

IN_FLIGHT_PER_WORKER = 4  # chunks submitted ahead per worker: enough to keep it busy, few in memory
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


class RowFailed(QuranftError, RuntimeError):
    """An unexpected error on one row (not undecodable audio, which is a counted drop); the message
    names the row."""


@dataclass(frozen=True)
class DecodeSettings:
    sample_rate: int
    min_duration: float
    max_duration: float
    audio_format: str
    leakage_max_bit_error_rate: float


@dataclass(frozen=True)
class Decoded:
    """What a worker learned about one row."""

    reason: str | None  # None: keep
    detail: str = ""
    duration: float = 0.0
    sha1: str = ""


@dataclass(frozen=True)
class RowTask:
    """One row to decode, and the file its audio is written to if it is kept."""

    row_id: str
    data: bytes
    destination: str


_worker_index: FingerprintIndex | None = None
_worker_settings: DecodeSettings | None = None


def init_worker(index_path: str | None, settings: DecodeSettings) -> None:
    global _worker_index, _worker_settings
    _keep_freed_memory()
    _worker_settings = settings
    _worker_index = read_index(index_path) if index_path else None


def _keep_freed_memory() -> None:
    """Have glibc keep freed memory for the next row instead of handing it back to the system.

    A clip's arrays (decoded, resampled, the fingerprint's frames and spectra) take megabytes;
    by default glibc returns them to the system after each row and the next row takes them back
    as fresh pages, and those page faults cost a third of a worker's CPU time. The memory kept is
    bounded by the trim threshold. Where there is no glibc, this does nothing.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, 32 << 20)  # arrays up to 32 MiB from the heap, not mmap
    mallopt(M_TRIM_THRESHOLD, 64 << 20)  # up to 64 MiB of free heap kept


def decode_row(data: bytes, destination: Path) -> Decoded:
    """Decode one row's audio, decide whether it is kept, and if so write it to `destination`."""
    settings = _worker_settings
    assert settings is not None, "worker not initialised"
    clip = decode_clip(data, settings.sample_rate, settings.min_duration, settings.max_duration)
    if clip.reason is not None:
        return Decoded(clip.reason, clip.detail, clip.duration)
    pcm = pcm16(clip.samples)
    sha1 = content_sha1(pcm)
    if _worker_index is not None and len(_worker_index):
        match = _worker_index.match(fingerprint(clip.samples, settings.sample_rate),
                                    settings.leakage_max_bit_error_rate)
        if match is not None:
            clip_id, ber = match
            return Decoded("leaked", f"benchmark clip {clip_id} (bit error rate {ber:.3f})", clip.duration, sha1)
    write_clip(destination, pcm, settings.sample_rate, settings.audio_format)
    return Decoded(None, "", clip.duration, sha1)


def decode_chunk(tasks: list[RowTask | None]) -> list[Decoded | None]:
    """Decode the rows that passed the cheap checks; None marks a row already dropped."""
    results: list[Decoded | None] = []
    for task in tasks:
        if task is None:
            results.append(None)
            continue
        try:
            results.append(decode_row(task.data, Path(task.destination)))
        except Exception as error:  # anything but undecodable audio is a fault, named by its row
            raise RowFailed(f"row {task.row_id}: {type(error).__name__}: {error}") from error
    return results


class DecodePool:
    """`workers` decoders, started once and used for every split of a source: this process and
    `workers - 1` spawned processes. Use it as a context manager.

    This process is one of the decoders (it decodes a chunk itself whenever the oldest chunk in
    flight is not back yet) rather than only reading rows and waiting: a spawned worker costs
    0.3-0.7 s of CPU to start (its imports), which an in-process decoder does not pay, and with
    two spawned workers on two cores the reading process's share of a core was lost to waiting.
    """

    def __init__(self, workers: int, index_path: str | None, settings: DecodeSettings) -> None:
        self.workers = max(1, min(workers, usable_cpus()))
        if self.workers < workers:
            # Decoders beyond the CPUs only take turns; the one that reads and orders the rows
            # then waits for a core, and the others for it (on 2 CPUs, 3 workers: 1.35x of 1;
            # 2 workers: 1.69x in the same run).
            log.warning("data stage: %d workers asked for, %d CPUs usable: %d used",
                        workers, self.workers, self.workers)
        self._executor: ProcessPoolExecutor | None = None
        self._started: list[Future] = []
        self.chunks_here = self.chunks_sent = 0  # decoded in this process / by spawned workers
        init_worker(index_path, settings)
        if self.workers > 1:
            spawned = self.workers - 1
            self._executor = ProcessPoolExecutor(
                max_workers=spawned,
                mp_context=get_context("spawn"),
                initializer=init_worker,
                initargs=(index_path, settings),
            )
            # The executor starts a spawned worker per submitted call while none is idle: start
            # them all now, so that their imports overlap the opening of the dataset. Until one
            # has answered, this process decodes alone (a chunk sent to a worker still importing
            # would keep the end of a short split waiting).
            self._started = [self._executor.submit(int) for _ in range(spawned)]

    def wait_started(self) -> None:
        """Wait until every spawned worker has started (has done its imports)."""
        wait(self._started)

    def _decode_here(self, chunk: list[RowTask | None]) -> list[Decoded | None]:
        self.chunks_here += 1
        return decode_chunk(chunk)

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def map(self, chunks: Iterable[list[RowTask | None]]) -> Iterator[list[Decoded | None]]:
        """Decode chunks in order, holding a bounded number in the workers' hands (Pool.imap would
        read the whole input ahead, audio bytes and all, into memory).

        Each chunk is either sent to a spawned worker or, when the oldest one sent is not back
        yet, decoded here: the next one read, or once all are read, the last one sent that no
        worker has started (so that the end of a split does not wait on a queue of sent chunks).
        Results come out in input order. Closing the iterator early cancels the chunks not started
        and waits for the running ones, so that no worker writes a file after it.
        """
        if self._executor is None:
            for chunk in chunks:
                yield self._decode_here(chunk)
            return
        source = iter(chunks)
        slots: deque[_Slot] = deque()  # in input order
        exhausted = False
        try:
            while True:
                limit = IN_FLIGHT_PER_WORKER * sum(future.done() for future in self._started)
                sent = sum(slot.future is not None for slot in slots)
                while not exhausted and sent < limit:
                    chunk = next(source, None)
                    if chunk is None:
                        exhausted = True
                    else:
                        slots.append(_Slot(chunk, self._executor.submit(decode_chunk, chunk)))
                        sent += 1
                        self.chunks_sent += 1
                while slots and slots[0].ready():
                    yield slots.popleft().result()
                if not slots and exhausted:
                    return
                if not exhausted:  # the oldest chunk sent is not back yet (or none is): decode one here
                    chunk = next(source, None)
                    if chunk is None:
                        exhausted = True
                    else:
                        slots.append(_Slot(None, None, self._decode_here(chunk)))
                    continue
                stolen = next((slot for slot in reversed(slots) if slot.take_back()), None)
                if stolen is not None:
                    self.chunks_sent -= 1
                    stolen.decoded = self._decode_here(stolen.chunk)
                    stolen.chunk = None
                else:
                    wait([slots[0].future])
        finally:
            futures = [slot.future for slot in slots if slot.future is not None]
            for future in futures:
                future.cancel()
            wait(futures)


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity: under Slurm, the job's CPUs)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass
class _Slot:
    """One chunk in DecodePool.map: sent to a worker (`future`, and its rows kept in `chunk` in case
    it is taken back), or decoded here (`decoded`; its audio not kept while older chunks wait)."""

    chunk: list[RowTask | None] | None
    future: Future | None
    decoded: list[Decoded | None] | None = None

    def ready(self) -> bool:
        return self.decoded is not None or (self.future is not None and self.future.done())

    def result(self) -> list[Decoded | None]:
        if self.decoded is None:
            assert self.future is not None
            self.decoded = self.future.result()
        return self.decoded

    def take_back(self) -> bool:
        """Withdraw the chunk from the workers if none has started it."""
        if self.future is None or not self.future.cancel():
            return False
        self.future = None
        return True
