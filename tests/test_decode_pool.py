"""The data stage's decoders: this process and spawned workers share the rows and give back every
verdict in order; a fault names its row; decoders beyond the usable CPUs are not started."""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future

import pytest

from conftest import encoded, synth
from quranft.data import decode_pool as decode_worker
from quranft.data.decode_pool import DecodePool, DecodeSettings, RowFailed, RowTask

SETTINGS = DecodeSettings(sample_rate=16000, min_duration=0.6, max_duration=30.0, audio_format="flac",
                          leakage_max_bit_error_rate=0.35)


def chunks_of(folder, count: int) -> list[list[RowTask | None]]:
    """`count` chunks of four rows: kept clips of different lengths, a too-short one, junk bytes, and a
    row dropped before decoding (None)."""
    folder.mkdir(parents=True, exist_ok=True)
    chunks = []
    for number in range(count):
        rows = [
            RowTask(f"row{number}a", encoded(synth(0.8 + number / 10, seed=number)), str(folder / f"{number}a.flac")),
            RowTask(f"row{number}b", encoded(synth(0.3, seed=100 + number)), str(folder / f"{number}b.flac")),
            RowTask(f"row{number}c", b"junk", str(folder / f"{number}c.flac")),
            None,
        ]
        chunks.append(rows)
    return chunks


def verdicts(results) -> list[list[tuple | None]]:
    """The verdicts without their details (an undecodable row's names a buffer's address)."""
    return [[(d.reason, d.duration, d.sha1) if d else None for d in chunk] for chunk in results]


def files(folder) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.fixture
def two_cpus(monkeypatch):
    """Two decoders even where the machine lends this test a single CPU."""
    monkeypatch.setattr(decode_worker, "usable_cpus", lambda: 2)


def test_this_process_and_a_spawned_worker_share_the_chunks_and_keep_their_order(tmp_path, two_cpus):
    with DecodePool(1, None, SETTINGS) as alone:
        expected = list(alone.map(chunks_of(tmp_path / "alone", 12)))
    assert alone.chunks_here == 12 and alone.chunks_sent == 0
    with DecodePool(2, None, SETTINGS) as pool:
        pool.wait_started()  # else a short run is over before the worker has imported numpy
        results = list(pool.map(chunks_of(tmp_path / "two", 12)))
    assert verdicts(results) == verdicts(expected)
    assert pool.chunks_sent >= 1 and pool.chunks_here >= 1 and pool.chunks_sent + pool.chunks_here == 12
    assert [decoded.reason if decoded else None for decoded in results[3]] == [None, "too_short", "undecodable", None]
    assert results[3][0].duration == pytest.approx(1.1) and len(results[3][0].sha1) == 40
    assert files(tmp_path / "alone") == files(tmp_path / "two") and len(files(tmp_path / "two")) == 12


def test_until_its_worker_has_started_this_process_decodes_alone(tmp_path, two_cpus):
    with DecodePool(2, None, SETTINGS) as pool:
        pool._started = [Future()]  # a worker that has not answered yet
        results = list(pool.map(chunks_of(tmp_path / "out", 3)))
    assert pool.chunks_here == 3 and pool.chunks_sent == 0
    assert [decoded.reason if decoded else None for decoded in results[0]] == [None, "too_short", "undecodable", None]


def test_a_fault_in_a_spawned_worker_names_the_row(tmp_path, two_cpus):
    chunks = chunks_of(tmp_path / "out", 8)
    chunks[0][0] = RowTask("the-bad-row", chunks[0][0].data, str(tmp_path / "missing" / "folder" / "x.flac"))
    with DecodePool(2, None, SETTINGS) as pool:
        pool.wait_started()
        with pytest.raises(RowFailed, match="^row the-bad-row: "):
            list(pool.map(chunks))


def test_closing_early_leaves_no_worker_writing(tmp_path, two_cpus):
    folder = tmp_path / "out"
    with DecodePool(2, None, SETTINGS) as pool:
        pool.wait_started()
        list(pool.map(chunks_of(tmp_path / "warm-up", 4)))  # the worker's first rows are its slowest
        results = pool.map(chunks_of(folder, 60))
        next(results)
        results.close()
        written = files(folder)
        time.sleep(1.0)
        assert files(folder) == written
    assert 1 <= len(written) < 60


def test_decoders_beyond_the_usable_cpus_are_not_started(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(decode_worker, "usable_cpus", lambda: 1)
    with caplog.at_level(logging.WARNING, logger="quranft"), DecodePool(3, None, SETTINGS) as pool:
        results = list(pool.map(chunks_of(tmp_path / "out", 2)))
    assert pool.workers == 1 and pool._executor is None and pool.chunks_here == 2
    assert "data stage: 3 workers asked for, 1 CPUs usable: 1 used" in caplog.text
    assert results[1][0].reason is None


def test_a_worker_killed_mid_run_stops_the_stage_naming_the_rows(tmp_path, two_cpus, monkeypatch):
    """A spawned worker that dies (killed, out of memory) is a stage failure naming where it was,
    and nothing is left half-written."""
    from conftest import data_config, save_dataset
    from quranft.data import prepare
    from quranft.data.prepare import DataStageError, prepare_source

    class PoolWithAKilledWorker(DecodePool):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.wait_started()
            for process in self._executor._processes.values():
                process.kill()
                process.join()

    monkeypatch.setattr(prepare, "DecodePool", PoolWithAKilledWorker)
    rows = [{"audio": encoded(synth(1.0, seed=number)), "text": f"row {number}"} for number in range(12)]
    dataset = save_dataset(tmp_path / "dataset", {"train": rows, "validation": rows[:1]})
    config = data_config()
    source = {**config["sources"]["quran_ayah_corpus"], "dataset": str(dataset)}
    # The one-row validation split goes first; under load its chunk may be decoded by this process
    # before the pool notices its dead workers (map decodes here while a sent chunk is not back),
    # and then train's first chunk is the one the dead pool fails: either way the split and its rows are named.
    with pytest.raises(DataStageError, match=r"^source 'quran_ayah_corpus' split '(validation|train)': a worker "
                                             r"process died \(killed, out of memory\?\) while the rows from "
                                             r"quran_ayah_corpus-\1-0000000 on were being decoded"):
        prepare_source("quran_ayah_corpus", source, config["data"], tmp_path / "out", workers=2)
    assert not (tmp_path / "out" / "audio").exists() and not list((tmp_path / "out").glob(".audio.tmp-*"))
    assert not (tmp_path / "out" / "report.json").exists()
