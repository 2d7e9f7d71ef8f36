"""The data stage's per-row work, done in worker processes: decode, down-mix, resample, duration
filter, content hash, leakage check, and writing the kept row's audio file.

A worker writes each kept row's file itself and sends back only a verdict, a duration and a hash,
so that the main process, which reads the rows and keeps them in order, never handles decoded or
encoded audio: with it, two workers on two cores did no better than one.
"""

from __future__ import annotations

import ctypes
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from quranft import audio as audio_mod
from quranft.errors import QuranftError
from quranft.fingerprint import FingerprintIndex, fingerprint
from quranft.leakage import read_index

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
    try:
        samples = audio_mod.load_audio(data, settings.sample_rate)
    except audio_mod.AudioDecodeError as error:
        return Decoded("undecodable", str(error))
    duration = len(samples) / settings.sample_rate
    if duration < settings.min_duration:
        return Decoded("too_short", f"{duration:.3f} s", duration)
    if duration > settings.max_duration:
        return Decoded("too_long", f"{duration:.3f} s", duration)
    pcm = audio_mod.pcm16(samples)
    sha1 = audio_mod.content_sha1(pcm)
    if _worker_index is not None and len(_worker_index):
        match = _worker_index.match(
            fingerprint(samples, settings.sample_rate), settings.leakage_max_bit_error_rate
        )
        if match is not None:
            clip_id, ber = match
            return Decoded("leaked", f"benchmark clip {clip_id} (bit error rate {ber:.3f})", duration, sha1)
    destination.write_bytes(audio_mod.encode(pcm, settings.sample_rate, settings.audio_format))
    return Decoded(None, "", duration, sha1)


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
    """`workers` processes, started once and used for every split of a source; with one worker,
    the work runs in this process. Use it as a context manager."""

    def __init__(self, workers: int, index_path: str | None, settings: DecodeSettings) -> None:
        self.workers = workers
        self._executor: ProcessPoolExecutor | None = None
        if workers <= 1:
            init_worker(index_path, settings)
        else:
            self._executor = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=get_context("spawn"),
                initializer=init_worker,
                initargs=(index_path, settings),
            )
            # The executor starts a spawned worker per submitted call while none is idle: start
            # them all now, so that their imports overlap the opening of the dataset.
            for _ in range(workers):
                self._executor.submit(int)

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def map(self, chunks: Iterable[list[RowTask | None]]) -> Iterator[list[Decoded | None]]:
        """Decode chunks in order, holding a bounded number in flight (Pool.imap would read the
        whole input ahead, audio bytes and all, into memory).

        Closing the iterator early cancels the chunks not started and waits for the running ones,
        so that no worker writes a file after it.
        """
        if self._executor is None:
            for chunk in chunks:
                yield decode_chunk(chunk)
            return
        pending: deque[Future] = deque()
        try:
            for chunk in chunks:
                pending.append(self._executor.submit(decode_chunk, chunk))
                if len(pending) >= IN_FLIGHT_PER_WORKER * self.workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
            wait(pending)
