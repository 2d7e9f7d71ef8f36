"""Building a verse-identification corpus (the protocol's manifest.json + audio) from datasets.

As the seed built its corpus: single-verse clips drawn per source and per category (short: at
most 5 words, medium: at most 15, long: more; counted on the verse's normalised "simple" text),
and multi-verse clips of 2 to 6 consecutive verses of one reciter joined with 0.5 s of silence.
Each source is a Hugging Face dataset (Hub id, save_to_disk folder, parquet), opened as the data
stage opens its sources (quranft.data.sources, audio as raw bytes). The verse of each row comes from
quranft.evaluation.row_verses; rows whose verse cannot be told are skipped and counted by reason.

The draw is deterministic for a given seed: the candidates of each (source, category) are put in
the order of a generator seeded with the seed, the source and the category, and the first ones
whose audio decodes and fits the duration limits are kept. Every clip is written as 16 kHz mono
WAV. The folder is staged beside its final place and swapped in whole, with build_report.json
saying what was picked and what was skipped, and why.

A source may also give long-form sessions (quranft.evaluation.build_sessions): runs of consecutive
verses of one reciter, drawn before the clips so that they get the longest runs; no row is in a
session and a clip both, so that the clip and the long-form benchmarks judge different recordings.
They are written to sessions.json (always, empty when none is asked for) and sessions/.
"""

from __future__ import annotations

import logging
import random
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from quranft.data.audio import SAMPLE_RATE, pcm16, write_clip
from quranft.data.benchmark_corpus import BUILD_REPORT, CORPUS_MANIFEST
from quranft.data.sources import SourceError, decode_value, open_split
from quranft.evaluation.build_sessions import SpeechClips, make_sessions, session_windows, write_sessions
from quranft.evaluation.row_verses import RowVerse, VerseResolver, skipped
from quranft.fileio import staged_dir, write_json
from quranft.matching.verse_index import default_index
from quranft.quran import tanzil
from quranft.quran.arabic import normalize
from quranft.quran.surah_names import surah_number

log = logging.getLogger("quranft")

CATEGORIES = ("short", "medium", "long")
SPARE = 0.5  # extra candidates fetched per bucket, as a share of its count, for clips that fail
EXAMPLES = 3  # skipped rows named per reason in the report


@dataclass(frozen=True)
class Candidate:
    row: int
    verse: tuple[int, int]
    how: str
    score: float
    basmala_said: bool
    reciter: str | None


def category(verse: tuple[int, int], settings: Mapping[str, Any]) -> str:
    words = len(normalize(tanzil.verse(*verse, variant="simple")).split())
    if words <= settings["short_max_words"]:
        return "short"
    return "medium" if words <= settings["medium_max_words"] else "long"


def open_source(name: str, source: Mapping[str, Any]):
    """The configured split, audio as raw bytes; every configured column checked."""
    # open_split checks the audio and text columns it is given; a source without text gives its audio twice.
    opened = open_split({**source, "splits": {"benchmark": source["split"]},
                         "text_column": source["text_column"] or source["audio_column"]}, "benchmark")
    columns = set(opened.rows.column_names or [])
    for key in ("surah_column", "ayah_column", "speaker_column"):
        if source[key] and columns and source[key] not in columns:
            raise SourceError(f"benchmark.build source {name}, {key}: column {source[key]!r} not found in "
                              f"{opened.description}; it has {', '.join(sorted(columns))}")
    return opened


def resolve_row(row: Mapping[str, Any], source: Mapping[str, Any], resolver: VerseResolver) -> RowVerse:
    """The row's verse from its surah/ayah columns, else from its text (within its surah if named)."""
    surah = None
    if source["surah_column"]:
        surah = surah_number(row.get(source["surah_column"]))
        if surah is None:
            return skipped("unknown_surah")
    if source["ayah_column"] and surah is not None:
        try:
            return resolver.from_columns(surah, int(row.get(source["ayah_column"])))
        except (TypeError, ValueError):
            return skipped("bad_ayah_number")
    return resolver.from_text(str(row.get(source["text_column"]) or ""), surah)


def scan(name: str, source: Mapping[str, Any], resolver: VerseResolver, report: dict) -> tuple[Any, list[Candidate]]:
    """Pass one: every row's verse from its text columns (the audio is not read)."""
    opened = open_source(name, source)
    report["dataset"] = opened.description
    wanted = [c for c in (source["text_column"], source["surah_column"], source["ayah_column"],
                          source["speaker_column"], source["label_column"]) if c]
    rows = opened.rows.select_columns(sorted(set(wanted))) if opened.rows.column_names else opened.rows
    candidates, skips, resolved = [], Counter(), Counter()
    examples: dict[str, list] = defaultdict(list)
    for index, row in enumerate(rows):
        if source["max_rows"] is not None and index >= source["max_rows"]:
            break
        report["rows_read"] = index + 1
        label = row.get(source["label_column"]) if source["label_column"] else None
        if source["keep_labels"] is not None and label not in source["keep_labels"]:
            found = skipped("bad_label")
        else:
            found = resolve_row(row, source, resolver)
        if found.verse is None:
            skips[found.skip] += 1
            if len(examples[found.skip]) < EXAMPLES:
                examples[found.skip].append({"row": index, "score": found.score, **{
                    column: row.get(column) for column in wanted if column != source["speaker_column"]}})
            continue
        resolved[found.how] += 1
        reciter = row.get(source["speaker_column"]) if source["speaker_column"] else None
        candidates.append(Candidate(index, found.verse, found.how, found.score, found.basmala_said,
                                    None if reciter is None else str(reciter)))
    report.update(resolved=dict(sorted(resolved.items())), skipped=dict(sorted(skips.items())),
                  skipped_examples=dict(sorted(examples.items())))
    return opened, candidates


def multi_windows(candidates: list[Candidate], settings: Mapping[str, Any], rng: random.Random,
                  count: int, wanted: int) -> list[list[Candidate]]:
    """Up to `wanted` runs of consecutive verses of one reciter, no row in two runs: the first
    `count` with lengths cycling from min_verses to max_verses, then spares. The longest are taken
    first (so that short ones do not break up the long runs they need), a shorter one where no
    run is long enough."""
    by_reciter: dict[tuple[str, int], dict[int, Candidate]] = defaultdict(dict)
    for candidate in candidates:
        if candidate.reciter is not None:
            by_reciter[(candidate.reciter, candidate.verse[0])].setdefault(candidate.verse[1], candidate)
    used: set[int] = set()
    windows: list[list[Candidate]] = []
    low, high = settings["min_verses"], settings["max_verses"]
    cycle = [low + number % (high - low + 1) for number in range(wanted)]
    for target in sorted(cycle[:count], reverse=True) + sorted(cycle[count:], reverse=True):
        for length in range(target, low - 1, -1):
            options = [
                [ayahs[a] for a in range(start, start + length)]
                for (_, _), ayahs in sorted(by_reciter.items())
                for start in sorted(ayahs)
                if all(a in ayahs and ayahs[a].row not in used for a in range(start, start + length))
            ]
            if options:
                chosen = rng.choice(options)
                used.update(c.row for c in chosen)
                windows.append(chosen)
                break
        else:
            break
    return windows


def fetch_audio(opened, rows: set[int], settings: Mapping[str, Any], audio_column: str,
                failures: Counter) -> dict[int, np.ndarray]:
    """Pass two: the 16 kHz mono audio of the given rows that decode and fit the duration limits."""
    import datasets

    def values():
        if isinstance(opened.rows, datasets.Dataset):
            for index in sorted(rows):
                yield index, opened.rows[index][audio_column]
            return
        last = max(rows, default=-1)
        for index, row in enumerate(opened.rows):  # a stream: read up to the last row needed
            if index > last:
                return
            if index in rows:
                yield index, row[audio_column]

    audio = {}
    for index, value in values():
        clip = decode_value(value, SAMPLE_RATE, settings["min_duration"], settings["max_duration"])
        if clip.reason is not None:
            failures[clip.reason] += 1
            continue
        audio[index] = clip.samples
    return audio


def _with_spare(count: int) -> int:
    """How many candidates to fetch for `count` clips, so that a few may fail to decode."""
    return count + max(2, int(count * SPARE)) if count else 0


def _rng(seed: int, *parts: str) -> random.Random:
    return random.Random(":".join([str(seed), *parts]))


def _sample(sample_id: str, verses: list[tuple[int, int]], kind: str, source: str, extra: dict) -> dict:
    entry = {"id": sample_id, "file": f"{sample_id}.wav", "surah": verses[0][0], "ayah": verses[0][1]}
    if len(verses) > 1:
        entry["ayah_end"] = verses[-1][1]
    entry.update(category=kind, source=source, expected_verses=[{"surah": s, "ayah": a} for s, a in verses], **extra)
    return entry


def _unique(base: str, taken: set[str]) -> str:
    name, number = base, 1
    while name in taken:
        number += 1
        name = f"{base}_{number}"
    taken.add(name)
    return name


def build_source(name: str, source: Mapping[str, Any], settings: Mapping[str, Any], resolver: VerseResolver,
                 staging: Path, taken: set[str], speech: SpeechClips) -> tuple[list[dict], dict, list[dict]]:
    """One source's clips and sessions, written into `staging`; its manifest entries, its report and
    its sessions' entries. The sessions' rows are drawn first (they need the longest runs), then the
    multi-verse clips' from the rows left, then the single verses': no row is in two of them."""
    report: dict[str, Any] = {"rows_read": 0}
    opened, candidates = scan(name, source, resolver, report)
    runs = session_windows(candidates, settings["sessions"], _rng(settings["seed"], name, "sessions"),
                           source["sessions"], _with_spare(source["sessions"]))
    in_sessions = {c.row for run in runs for c in run}
    multi = source["multi"]
    windows = multi_windows([c for c in candidates if c.row not in in_sessions], {**settings, **multi},
                            _rng(settings["seed"], name, "multi"), multi["count"], _with_spare(multi["count"]))
    in_windows = {c.row for window in windows for c in window} | in_sessions
    kinds = {c.row: category(c.verse, settings) for c in candidates}
    drawn = {}
    for kind in CATEGORIES:
        bucket = [c for c in candidates if kinds[c.row] == kind and c.row not in in_windows]
        _rng(settings["seed"], name, kind).shuffle(bucket)
        drawn[kind] = bucket[:_with_spare(source["singles"][kind])]
    failures: Counter = Counter()
    needed = {c.row for bucket in drawn.values() for c in bucket} | in_windows
    audio = fetch_audio(opened, needed, settings, source["audio_column"], failures)

    entries = []
    for kind in CATEGORIES:
        kept = [c for c in drawn[kind] if c.row in audio][:source["singles"][kind]]
        for c in kept:
            sample_id = _unique(f"{name}_{c.verse[0]:03d}_{c.verse[1]:03d}", taken)
            write_clip(staging / f"{sample_id}.wav", pcm16(audio[c.row]), SAMPLE_RATE, "wav")
            entries.append(_sample(sample_id, [c.verse], kind, name, _provenance([c])))
    gap = np.zeros(int(round(settings["gap_seconds"] * SAMPLE_RATE)), np.float32)
    joined = [w for w in windows if all(c.row in audio for c in w)][:multi["count"]]
    for window in joined:
        verses = [c.verse for c in window]
        sample_id = _unique(f"multi_{verses[0][0]:03d}_{verses[0][1]:03d}_{verses[-1][1]:03d}", taken)
        parts = [piece for c in window for piece in (audio[c.row], gap)][:-1]
        write_clip(staging / f"{sample_id}.wav", pcm16(np.concatenate(parts)), SAMPLE_RATE, "wav")
        entries.append(_sample(sample_id, verses, "multi", name, _provenance(window)))

    sessions, report["sessions"] = make_sessions(name, runs, audio, settings["sessions"],
                                                 _rng(settings["seed"], name, "session_layout"), speech,
                                                 source["sessions"], staging)
    picked = Counter(entry["category"] for entry in entries)
    wanted = {**source["singles"], "multi": multi["count"]}
    report.update(
        candidates={kind: sum(k == kind for k in kinds.values()) for kind in CATEGORIES},
        multi_windows_found=len(windows),
        audio_failures=dict(sorted(failures.items())),
        wanted=wanted,
        picked={kind: picked[kind] for kind in wanted},
        short_of_wanted={kind: wanted[kind] - picked[kind] for kind in wanted if picked[kind] < wanted[kind]},
        multi_lengths=dict(sorted(Counter(str(len(w)) for w in joined).items())),
    )
    return entries, report, sessions


def _provenance(rows: list[Candidate]) -> dict:
    first = rows[0]
    extra: dict[str, Any] = {"rows": [c.row for c in rows], "verse_from": sorted({c.how for c in rows}),
                             "match_score": min(c.score for c in rows), "basmala_said": first.basmala_said}
    if first.reciter is not None:
        extra["speaker"] = first.reciter
    return extra


def build_corpus(settings: Mapping[str, Any], out_dir: str | Path) -> dict[str, Any]:
    """Write the corpus folder `out_dir` (manifest.json and its clips, sessions.json and its
    sessions, build_report.json); return the report."""
    out_dir = Path(out_dir)
    with staged_dir(out_dir) as staging:
        resolver = VerseResolver(default_index(), settings["min_score"])
        speech = SpeechClips(settings["sessions"]["speech_source"], settings["seed"])
        samples, sessions, reports, taken = [], [], {}, set()
        for source in settings["sources"]:
            name = source["name"]
            entries, reports[name], made = build_source(name, source, settings, resolver, staging, taken, speech)
            samples += entries
            sessions += made
            log.info("%s: %s picked from %d rows read; skipped %s; %d sessions (skipped %s)", name,
                     reports[name]["picked"], reports[name]["rows_read"], reports[name]["skipped"],
                     len(made), reports[name]["sessions"]["skipped"])
        report = {
            "seed": settings["seed"], "samples": len(samples),
            "by_category": dict(sorted(Counter(s["category"] for s in samples).items())),
            "by_source": dict(Counter(s["source"] for s in samples)),
            "sessions": {"count": len(sessions), "minutes": round(sum(s["seconds"] for s in sessions) / 60, 2),
                         "by_source": dict(Counter(s["source"] for s in sessions)),
                         "skipped": dict(sorted(sum((Counter(r["sessions"]["skipped"]) for r in reports.values()),
                                                    Counter()).items())),
                         "speech": speech.report()},
            "settings": {k: v for k, v in settings.items() if k != "sources"},
            "sources": reports,
        }
        write_json(staging / CORPUS_MANIFEST, {"samples": samples})
        write_sessions(staging, sessions)
        write_json(staging / BUILD_REPORT, report)
    return report
