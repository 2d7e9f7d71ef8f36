"""The data stage for one source: dataset rows to 16 kHz mono audio files and NeMo JSONL manifests.

Rows stream through in dataset order, or under a cap in a seeded random order (quranft.data.draw).
Cheap checks (empty text, label) run first in this process;
the rest (decode, down-mix, resample, duration, content hash, leakage fingerprint, encode and write)
runs in the decoders (quranft.data.decode_pool: this process and spawned workers), and their verdicts
come back in order, so that two runs write byte-identical manifests whatever the number of workers. Duplicates, caps, reports and
manifests are decided here. Every dropped row is counted by reason in the report.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures.process import BrokenProcessPool
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quranft.data.benchmark_index import read_speakers
from quranft.data.decode_pool import Decoded, DecodePool, DecodeSettings, RowFailed, RowTask
from quranft.data.draw import Drawn, draw
from quranft.data.sources import audio_bytes, open_split
from quranft.errors import QuranftError
from quranft.fileio import replace_dir, write_json, write_jsonl
from quranft.progress import progress
from quranft.quran.arabic import collapse_spaces

REASONS = (
    "undecodable",
    "empty_text",
    "bad_label",
    "too_short",
    "too_long",
    "leaked",
    "benchmark_speaker",
    "duplicate",
    "over_cap",
)
EXAMPLES_PER_REASON = 5
UNLABELLED = "(unlabelled)"  # the per-label counts' name for rows whose label is null
SPLIT_ORDER = ("validation", "train")  # validation first: a train row repeating it is the duplicate
CHUNK_ROWS = 4


class DataStageError(QuranftError, RuntimeError):
    """The data stage cannot produce trustworthy manifests; the message names the source and rows."""


def split_cap(source_name: str, split: str, data: Mapping[str, Any]) -> int | None:
    if source_name == "retasy":
        return data["max_retasy_samples"]
    return data["max_train_samples"] if split == "train" else data["max_val_samples"]


@dataclass
class SplitReport:
    rows_read: int = 0  # rows examined, plus those counted over the cap without reading
    rows_total: int | None = None
    kept: int = 0
    kept_seconds: float = 0.0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    examples: dict[str, list[str]] = field(default_factory=dict)
    leaked: list[dict[str, str]] = field(default_factory=list)
    # per label value, when the source has a label column; rows past the cap are never read, so
    # they are counted in over_cap but under no label
    labels: dict[str, dict[str, Any]] | None = None
    drawn: dict[str, Any] = field(default_factory=dict)  # how the rows read were drawn (quranft.data.draw)

    def count_label(self, label: str | None, reason: str | None) -> None:
        if self.labels is None:
            return
        figures = self.labels.setdefault(UNLABELLED if label is None else str(label), {"kept": 0, "dropped": {}})
        if reason is None:
            figures["kept"] += 1
        else:
            figures["dropped"][reason] = figures["dropped"].get(reason, 0) + 1

    def drop(self, reason: str, row_id: str, detail: str = "") -> None:
        self.dropped[reason] += 1
        examples = self.examples.setdefault(reason, [])
        if len(examples) < EXAMPLES_PER_REASON:
            examples.append(f"{row_id}: {detail}" if detail else row_id)

    def as_dict(self) -> dict[str, Any]:
        labels = {} if self.labels is None else {"labels": dict(sorted(self.labels.items()))}
        return {
            "rows_total": self.rows_total,
            "rows_read": self.rows_read,
            "kept": self.kept,
            "kept_hours": round(self.kept_seconds / 3600, 4),
            "dropped": self.dropped,
            "dropped_total": sum(self.dropped.values()),
            "examples": {reason: self.examples[reason] for reason in REASONS if reason in self.examples},
            "leaked": self.leaked,
            "drawn": self.drawn,
            **labels,
        }


@dataclass
class _Row:
    index: int
    row_id: str
    text: str
    label: str | None = None
    speaker: str | None = None  # the source's speaker_column, when it names one
    reason: str | None = None  # set by the cheap checks, before any decoding
    detail: str = ""


def _read_rows(rows: Iterable[tuple[int, Mapping[str, Any]]], source_name: str, split: str,
               source: Mapping[str, Any], held_out: set[str]) -> Iterator[tuple[_Row, bytes | None]]:
    """Every row (with its number in the split) with its audio bytes, or with the reason it is
    dropped without decoding; `held_out` are the benchmark's speakers."""
    text_column = source["text_column"]
    for index, row in rows:
        row_id = str(row[source["id_column"]]) if source["id_column"] else f"{source_name}-{split}-{index:07d}"
        label = row.get(source["label_column"]) if source["label_column"] else None
        speaker = row.get(source["speaker_column"]) if source.get("speaker_column") else None
        item = _Row(index, row_id, collapse_spaces(row.get(text_column) or ""), label,
                    None if speaker is None else str(speaker))
        if not item.text:
            item.reason = "empty_text"
        elif not _label_kept(label, source):
            item.reason, item.detail = "bad_label", UNLABELLED if label is None else str(label)
        elif speaker is not None and str(speaker) in held_out:
            item.reason, item.detail = "benchmark_speaker", f"speaker {speaker} has clips in the benchmark"
        else:
            try:
                yield item, audio_bytes(row.get(source["audio_column"]))
                continue
            except (OSError, ValueError) as error:
                item.reason, item.detail = "undecodable", str(error)
        yield item, None


def _label_kept(label: str | None, source: Mapping[str, Any]) -> bool:
    """keep_labels (when given) lists the labels kept, else drop_labels those dropped; a null
    entry stands for the unlabelled rows."""
    if not source["label_column"]:
        return True
    if source.get("keep_labels") is not None:
        return label in source["keep_labels"]
    return label not in source["drop_labels"]


def _chunked(pairs: Iterable[tuple[_Row, bytes | None]], size: int) -> Iterator[tuple[list[_Row], list[bytes | None]]]:
    rows: list[_Row] = []
    datas: list[bytes | None] = []
    for row, data in pairs:
        rows.append(row)
        datas.append(data)
        if len(rows) == size:
            yield rows, datas
            rows, datas = [], []
    if rows:
        yield rows, datas


def decode_settings(data: Mapping[str, Any]) -> DecodeSettings:
    """What the decoders need of the `data` section."""
    return DecodeSettings(sample_rate=data["sample_rate"], min_duration=data["min_duration"],
                          max_duration=data["max_duration"], audio_format=data["audio_format"],
                          leakage_max_bit_error_rate=data["leakage_max_bit_error_rate"])


def prepare_source(
    source_name: str,
    source: Mapping[str, Any],
    data: Mapping[str, Any],
    out_dir: str | Path,
    benchmark_index: str | Path | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Write `<out_dir>/<split>.jsonl`, `<out_dir>/audio/<split>/*` and `<out_dir>/report.json`.

    Returns the report. Raises DataStageError (writing nothing) when too many rows are undecodable.
    The audio is written into a staging folder and swapped in whole (fileio.replace_dir).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in (*out_dir.glob(".audio.tmp-*"), *out_dir.glob(".audio.old-*")):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    staging = out_dir / f".audio.tmp-{_unique_suffix()}"
    settings = decode_settings(data)
    try:
        held_out = held_out_speakers(source, data, benchmark_index)
        manifests, reports = _prepare_splits(source_name, source, data, settings, staging, benchmark_index, workers,
                                             held_out)
        staging.mkdir(parents=True, exist_ok=True)
        replace_dir(staging, out_dir / "audio")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for split, rows in manifests.items():
        write_jsonl(out_dir / f"{split}.jsonl", rows)
    result = {
        "source": source_name,
        "dataset": source["dataset"],
        "settings": {
            **{key: getattr(settings, key) for key in ("sample_rate", "min_duration", "max_duration", "audio_format",
                                                       "leakage_max_bit_error_rate")},
            "drop_labels": list(source["drop_labels"]),
            "keep_labels": source.get("keep_labels"),
            "caps": {split: split_cap(source_name, split, data) for split in manifests},
        },
        "speakers": speaker_check(source, data, held_out),
        "splits": {split: reports[split].as_dict() for split in manifests},
    }
    write_json(out_dir / "report.json", result)
    return result


def _prepare_splits(source_name: str, source: Mapping[str, Any], data: Mapping[str, Any], settings: DecodeSettings,
                    staging: Path, benchmark_index: str | Path | None,
                    workers: int, held_out: set[str]) -> tuple[dict[str, list[dict[str, Any]]], dict[str, SplitReport]]:
    """Every split of the source decoded into `staging`, validation first; their manifest rows
    and reports. A row's audio seen in an earlier split is a duplicate in the later one."""
    seen_sha1: dict[str, str] = {}
    manifests: dict[str, list[dict[str, Any]]] = {}
    reports: dict[str, SplitReport] = {}
    with DecodePool(workers, str(benchmark_index) if benchmark_index else None, settings) as pool:
        for split in (s for s in SPLIT_ORDER if s in source["splits"]):
            opened = open_split(source, split)
            cap = split_cap(source_name, split, data)
            drawn = draw(opened, split, cap, data["seed"], data["shuffle_buffer_size"])
            report = SplitReport(rows_total=opened.num_rows, labels={} if source["label_column"] else None,
                                 drawn=drawn.how)
            reports[split] = report
            manifests[split] = _prepare_split(source_name, split, source, drawn, settings.audio_format, cap, staging,
                                              pool, seen_sha1, report, held_out)
            _check_undecodable(source_name, split, report, data["max_undecodable_fraction"])
    return manifests, reports


def held_out_speakers(source: Mapping[str, Any], data: Mapping[str, Any], benchmark_index) -> set[str]:
    """The benchmark's speakers this source's rows are checked against (none when the source
    names no speaker column, or the hold-out is off)."""
    if not (data["hold_out_benchmark_speakers"] and source.get("speaker_column") and benchmark_index):
        return set()
    return read_speakers(benchmark_index)


def speaker_check(source: Mapping[str, Any], data: Mapping[str, Any], held_out: set[str]) -> dict[str, Any]:
    """What the report says of the speaker hold-out for this source."""
    if not data["hold_out_benchmark_speakers"]:
        return {"checked": False, "why": "data.hold_out_benchmark_speakers is false"}
    if not source.get("speaker_column"):
        return {"checked": False, "why": "the source names no speaker_column: speaker disjointness from the "
                                         "benchmark could not be checked"}
    return {"checked": True, "speaker_column": source["speaker_column"], "benchmark_speakers": len(held_out)}


def _unique_suffix() -> str:
    return f"{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _prepare_split(source_name, split, source, drawn: Drawn, audio_format, cap, staging, pool, seen_sha1,
                   report, held_out) -> list[dict[str, Any]]:
    """Decode one split into `staging/<split>/`; return its manifest rows, counting every drop.

    All counting happens here, in row order, so that the report does not depend on how many
    rows the workers had in flight when the cap was reached. The workers write every row that
    passes their checks; the files of rows dropped here (duplicates, rows decoded past the cap)
    are removed at the end, so that the folder holds exactly the manifest's files.
    """
    audio_dir = staging / split
    audio_dir.mkdir(parents=True, exist_ok=True)
    manifest: list[dict[str, Any]] = []
    row_chunks: deque[list[_Row]] = deque()

    def file_name(row: _Row) -> str:
        return f"{row.index:07d}.{audio_format}"

    def task_chunks() -> Iterator[list[RowTask | None]]:
        for rows, datas in _chunked(_read_rows(drawn.rows, source_name, split, source, held_out), CHUNK_ROWS):
            row_chunks.append(rows)
            yield [None if data is None else RowTask(row.row_id, data, str(audio_dir / file_name(row)))
                   for row, data in zip(rows, datas)]

    try:
        with closing(pool.map(task_chunks())) as results:
            _count_rows(source_name, split, source, results, row_chunks, file_name, cap, seen_sha1,
                        report, manifest, drawn.order)
    except RowFailed as error:
        raise DataStageError(f"source '{source_name}' split '{split}': {error}") from error
    except BrokenProcessPool as error:
        rows = row_chunks[0]
        raise DataStageError(
            f"source '{source_name}' split '{split}': a worker process died (killed, out of memory?) "
            f"while the rows from {rows[0].row_id} on were being decoded"
        ) from error
    listed = {Path(row["audio_filepath"]).name for row in manifest}
    for path in audio_dir.iterdir():
        if path.name not in listed:
            path.unlink()
    return manifest


def _count_rows(source_name, split, source, results, row_chunks, file_name, cap, seen_sha1, report,
                manifest, order) -> None:
    """Take the workers' verdicts in reading order into `report` and `manifest`, up to the cap."""
    for decoded_chunk in progress(results, total=None, desc=f"{source_name}/{split}", unit="chunk"):
        for row, decoded in zip(row_chunks.popleft(), decoded_chunk):
            report.rows_read += 1
            if decoded is None:
                decoded = Decoded(row.reason, row.detail)
            elif decoded.reason is None and decoded.sha1 in seen_sha1:
                decoded = Decoded("duplicate", f"same audio as {seen_sha1[decoded.sha1]}")
            report.count_label(row.label, decoded.reason)
            if decoded.reason is not None:
                report.drop(decoded.reason, row.row_id, decoded.detail)
                if decoded.reason == "leaked":
                    report.leaked.append({"id": row.row_id, "match": decoded.detail})
                continue
            seen_sha1[decoded.sha1] = row.row_id
            manifest.append(
                {
                    "audio_filepath": f"audio/{split}/{file_name(row)}",
                    "duration": round(decoded.duration, 6),
                    "text": row.text,
                    "id": row.row_id,
                    "source": source_name,
                    "audio_sha1": decoded.sha1,
                    **({} if row.speaker is None else {"speaker": row.speaker}),
                }
            )
            report.kept += 1
            report.kept_seconds += decoded.duration
            if cap is not None and report.kept >= cap:
                _count_over_cap(source_name, split, source, order, report)
                return


def _count_over_cap(source_name, split, source, order, report) -> None:
    """The rows after the one that filled the cap (in reading order: `order`, a permutation of the
    split, or the split's own): counted, never read or decoded."""
    if report.rows_total is None:  # a stream of unknown length: the rest is simply not read
        return
    read = report.rows_read
    unread = report.rows_total - read
    report.dropped["over_cap"] += unread
    report.rows_read += unread
    following = (order or range(report.rows_total))[read:read + EXAMPLES_PER_REASON]
    for index in following:
        report.examples.setdefault("over_cap", []).append(
            f"row {index}" if source["id_column"] else f"{source_name}-{split}-{index:07d}"
        )


def _check_undecodable(source_name: str, split: str, report: SplitReport, max_fraction: float) -> None:
    attempted = report.rows_read - report.dropped["over_cap"] - report.dropped["empty_text"] - report.dropped["bad_label"]
    bad = report.dropped["undecodable"]
    if attempted and bad / attempted > max_fraction:
        first = "; ".join(report.examples.get("undecodable", []))
        raise DataStageError(
            f"source '{source_name}' split '{split}': {bad} of {attempted} rows "
            f"({100 * bad / attempted:.1f}%) could not be decoded, above "
            f"data.max_undecodable_fraction={max_fraction}; first bad rows: {first}"
        )
