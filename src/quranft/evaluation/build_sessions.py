"""The long-form sessions of a built corpus (quranft.data.sessions' format): whole recitations made
from a source's per-verse recordings, for the long-form benchmark.

A session is a run of consecutive verses of one reciter (the source's speaker_column), in the order
of the mushaf, so that a run may cross a surah's end into the next surah; its length is drawn from
min_verses to max_verses and cut to max_seconds. The verses are joined by pauses of silence whose
lengths are drawn from min_pause_seconds to max_pause_seconds (one before the first verse and one
after the last too). A share of the sessions (between_share) holds one stretch of non-recitation at
a seam drawn at random, its kind taking turns over `between`: a long silence (the whole gap), noise
(white, pink or brown, at noise_db against the verses' RMS) or speech that is not the Quran (from
speech_source, at the verses' RMS), each with a pause on either side. Each verse is its row's audio
as decoded, sample for sample, and its start and end are written to the sample; a row whose text
opened with the basmala keeps it, inside its verse (`basmala_said` on that verse).

Everything is drawn from generators seeded by the build's seed and the source's name: the same seed
and data give byte-identical sessions.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from quranft.data.audio import SAMPLE_RATE, pcm16, write_clip
from quranft.data.sessions import SESSIONS_MANIFEST
from quranft.data.sources import decode_value, open_split
from quranft.fileio import write_json
from quranft.quran import tanzil

SESSIONS_DIR = "sessions"
NOISE_COLORS = ("white", "pink", "brown")
FADE_SECONDS = 0.05  # noise and speech fade in and out, so that no stretch starts with a click
NO_SPEECH_SOURCE = "no speech_source configured: the sessions hold silence and noise only"


@lru_cache(maxsize=1)
def mushaf_order() -> dict[tuple[int, int], int]:
    """Each verse's place in the mushaf (1:1 is 0, 114:6 is 6235)."""
    return {key: number for number, key in enumerate(sorted(tanzil.verses("simple")))}


def _runs_from(by_place: Mapping[int, Any], used: set[int]) -> dict[int, int]:
    """For each place whose row is free: how many consecutive places from it have free rows."""
    runs: dict[int, int] = {}
    for place in sorted(by_place, reverse=True):
        if by_place[place].row not in used:
            runs[place] = 1 + runs.get(place + 1, 0)
    return runs


def _crosses(window: Sequence[Any]) -> bool:
    return len({c.verse[0] for c in window}) > 1


def session_windows(candidates: Sequence[Any], settings: Mapping[str, Any], rng: random.Random,
                    count: int, wanted: int) -> list[list[Any]]:
    """Up to `wanted` runs of consecutive verses of one reciter, no row in two runs, each of a
    length drawn from min_verses to max_verses: the first `count` (the longest first, shorter where
    the rows hold no run that long), then spares for sessions that fail. The first crosses into the
    next surah within its first min_verses verses (the part that max_seconds never cuts) wherever a
    run of its length does. `candidates` need .row, .verse and .reciter
    (quranft.evaluation.build_corpus.Candidate)."""
    order = mushaf_order()
    by_reciter: dict[str, dict[int, Any]] = defaultdict(dict)
    for candidate in candidates:
        if candidate.reciter is not None:
            by_reciter[candidate.reciter].setdefault(order[candidate.verse], candidate)
    low, high = settings["min_verses"], settings["max_verses"]
    lengths = [rng.randint(low, high) for _ in range(wanted)]
    targets = sorted(lengths[:count], reverse=True) + sorted(lengths[count:], reverse=True)
    used: set[int] = set()
    windows: list[list[Any]] = []
    for number, target in enumerate(targets):
        runs = {reciter: _runs_from(places, used) for reciter, places in sorted(by_reciter.items())}
        longest = max((n for reciter_runs in runs.values() for n in reciter_runs.values()), default=0)
        length = min(target, longest)
        if length < low:
            break
        options = [[by_reciter[reciter][place] for place in range(start, start + length)]
                   for reciter, reciter_runs in runs.items()
                   for start, run in sorted(reciter_runs.items()) if run >= length]
        crossing = [window for window in options if _crosses(window[:low])] if number == 0 else []
        chosen = rng.choice(crossing or options)
        used.update(c.row for c in chosen)
        windows.append(chosen)
    return windows


def colored_noise(color: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """n samples of white, pink (power 1/f) or brown (1/f^2) noise at an RMS of 1. A few lines of
    spectral shaping: no library of ours makes coloured noise, and this needs no new dependency."""
    spectrum = np.fft.rfft(rng.normal(0.0, 1.0, n))
    frequency = np.fft.rfftfreq(n)
    frequency[0] = frequency[1] if n > 1 else 1.0
    spectrum *= {"white": 1.0, "pink": 1.0 / np.sqrt(frequency), "brown": 1.0 / frequency}[color]
    noise = np.fft.irfft(spectrum, n)
    noise -= noise.mean()
    return noise / max(float(np.sqrt(np.mean(noise**2))), 1e-12)


def _faded(audio: np.ndarray) -> np.ndarray:
    n = len(audio)
    ramp = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (SAMPLE_RATE * FADE_SECONDS))
    return (audio * ramp).astype(np.float32)


def _rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))


class SpeechClips:
    """Clips of speech that is not the Quran, decoded on demand from the configured speech_source
    in an order seeded by the build's seed (a stream in its own order); none without a source."""

    def __init__(self, source: Mapping[str, Any] | None, seed: int):
        self.source, self.seed = source, seed
        self.description: str | None = None
        self.failures: Counter = Counter()
        self.used = 0
        self._values: Iterator[tuple[int, Any]] | None = None

    def _draw(self) -> Iterator[tuple[int, Any]]:
        import datasets

        source = self.source
        opened = open_split({**source, "splits": {"speech": source["split"]},
                             "text_column": source["audio_column"]}, "speech")
        self.description = opened.description
        rows, limit, column = opened.rows, source["max_rows"], source["audio_column"]
        if isinstance(rows, datasets.Dataset):
            rows = rows.select_columns([column])
            order = list(range(len(rows) if limit is None else min(limit, len(rows))))
            random.Random(f"{self.seed}:speech").shuffle(order)
            yield from ((index, rows[index][column]) for index in order)
            return
        for index, row in enumerate(rows):
            if limit is not None and index >= limit:
                return
            yield index, row[column]

    def next(self, max_seconds: float) -> tuple[int, np.ndarray] | None:
        """The next clip that decodes (its row, its first max_seconds), or None when none is left."""
        if self.source is None:
            return None
        if self._values is None:
            self._values = self._draw()
        for index, value in self._values:
            clip = decode_value(value, SAMPLE_RATE)
            if clip.reason is not None:
                self.failures[clip.reason] += 1
                continue
            self.used += 1
            return index, clip.samples[: int(max_seconds * SAMPLE_RATE)]
        return None

    def report(self) -> dict[str, Any]:
        if self.source is None:
            return {"source": None, "why": NO_SPEECH_SOURCE}
        return {"source": self.description or self.source["dataset"], "clips_used": self.used,
                "failures": dict(sorted(self.failures.items()))}


def _stretch(kind: str, settings: Mapping[str, Any], level: float, rng: random.Random,
             speech: SpeechClips) -> tuple[np.ndarray, dict] | None:
    """The non-recitation stretch of `kind` and what the manifest says of it besides its times."""
    low, high = settings["min_between_seconds"], settings["max_between_seconds"]
    samples = int(round(rng.uniform(low, high) * SAMPLE_RATE))
    if kind == "silence":
        return np.zeros(samples, np.float32), {}
    if kind == "noise":
        color = rng.choice(NOISE_COLORS)
        noise = colored_noise(color, samples, np.random.default_rng(rng.getrandbits(64)))
        return _faded(noise * level * 10 ** (settings["noise_db"] / 20)), {"noise": color}
    clip = speech.next(high)
    if clip is None:
        return None
    row, audio = clip
    return _faded(audio * level / max(_rms(audio), 1e-12)), {"speech_row": row}


def _pause(settings: Mapping[str, Any], rng: random.Random) -> np.ndarray:
    seconds = rng.uniform(settings["min_pause_seconds"], settings["max_pause_seconds"])
    return np.zeros(int(round(seconds * SAMPLE_RATE)), np.float32)


def lay_out(window: Sequence[Any], audio: Mapping[int, np.ndarray], kind: str | None,
            settings: Mapping[str, Any], rng: random.Random, speech: SpeechClips
            ) -> tuple[np.ndarray, list[dict], list[dict]] | str:
    """One session's audio and truth (verses, non_recitation; times in seconds, to the sample), or
    why it was skipped. The window is cut before its first row without audio, then to max_seconds
    (counting the stretch of `kind` and a pause beside it, wherever it falls)."""
    missing = [number for number, c in enumerate(window) if c.row not in audio]
    rows = list(window[: missing[0]] if missing else window)
    if len(rows) < settings["min_verses"]:
        return "audio_failure"
    lead, tail, after = (_pause(settings, rng) for _ in range(3))
    gaps = [_pause(settings, rng) for _ in range(len(rows) - 1)]
    stretch = None
    if kind is not None:
        level = _rms(np.concatenate([audio[c.row] for c in rows]))
        stretch = _stretch(kind, settings, level, rng, speech)
        if stretch is None:
            return "no_speech_clip"
    limit = int(round(settings["max_seconds"] * SAMPLE_RATE))
    total = len(lead) + len(tail) + (0 if stretch is None else len(stretch[0]) + len(after))
    keep = 0
    for number, candidate in enumerate(rows):
        total += len(audio[candidate.row]) + (len(gaps[number - 1]) if number else 0)
        if total > limit:
            break
        keep = number + 1
    if keep < settings["min_verses"]:
        return "over_max_seconds"
    seam = rng.randint(1, keep - 1) if stretch is not None else None
    parts: list[np.ndarray] = []

    def place(samples: np.ndarray) -> dict:
        start = sum(len(part) for part in parts)
        parts.append(samples)
        return {"start": round(start / SAMPLE_RATE, 7), "end": round((start + len(samples)) / SAMPLE_RATE, 7)}

    verses, non_recitation = [], []
    place(lead)
    for number, candidate in enumerate(rows[:keep]):
        if number == seam:  # a long silence is the whole gap; noise and speech have a pause either side
            if kind != "silence":
                place(gaps[number - 1])
            non_recitation.append({"kind": kind, **place(stretch[0]), **stretch[1]})
            if kind != "silence":
                place(after)
        elif number:
            place(gaps[number - 1])
        verse = {"surah": candidate.verse[0], "ayah": candidate.verse[1], **place(audio[candidate.row]),
                 "row": candidate.row}
        if candidate.basmala_said:
            verse["basmala_said"] = True
        verses.append(verse)
    place(tail)
    return np.concatenate(parts), verses, non_recitation


def make_sessions(name: str, windows: Sequence[Sequence[Any]], audio: Mapping[int, np.ndarray],
                  settings: Mapping[str, Any], rng: random.Random, speech: SpeechClips, wanted: int,
                  staging: Path) -> tuple[list[dict], dict]:
    """Up to `wanted` sessions from a source's windows (session_windows, in order: a window that
    fails gives way to the next), written under `staging`/sessions/; their sessions.json entries,
    and the source's report of them."""
    kinds = [kind for kind in settings["between"] if kind != "speech" or speech.source is not None]
    # which of the sessions (by number) hold non-recitation, and what: a window that fails leaves its
    # number, and its kind, to the next
    with_stretch = sorted(rng.sample(range(wanted), round(settings["between_share"] * wanted)) if kinds else [])
    kind_of = {number: kinds[turn % len(kinds)] for turn, number in enumerate(with_stretch)}
    entries, skipped = [], Counter({"no_run": wanted - len(windows)} if wanted > len(windows) else {})
    for window in windows:
        if len(entries) == wanted:
            break
        made = lay_out(window, audio, kind_of.get(len(entries)), settings, rng, speech)
        if isinstance(made, str):
            skipped[made] += 1
            continue
        track, verses, non_recitation = made
        session_id = f"{name}_session_{len(entries) + 1:02d}"
        file = f"{SESSIONS_DIR}/{session_id}.wav"
        (staging / SESSIONS_DIR).mkdir(exist_ok=True)
        write_clip(staging / file, pcm16(track), SAMPLE_RATE, "wav")
        entries.append({"id": session_id, "file": file, "speaker": window[0].reciter, "source": name,
                        "seconds": round(len(track) / SAMPLE_RATE, 7), "verses": verses,
                        "non_recitation": non_recitation})
    report = {
        "wanted": wanted, "runs_found": len(windows), "made": len(entries),
        "minutes": round(sum(e["seconds"] for e in entries) / 60, 2),
        "verses": [len(e["verses"]) for e in entries],
        "crossing_surah": sum(len({v["surah"] for v in e["verses"]}) > 1 for e in entries),
        "between": dict(sorted(Counter(s["kind"] for e in entries for s in e["non_recitation"]).items())),
        "skipped": dict(sorted(skipped.items())),
    }
    return entries, report


def write_sessions(staging: Path, entries: list[dict]) -> None:
    """sessions.json, written even when empty: a built corpus always says what sessions it has."""
    write_json(staging / SESSIONS_MANIFEST, {"sessions": entries})
