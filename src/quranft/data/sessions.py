"""The long-form sessions of a benchmark corpus: whole recitations of many verses, each verse with its
true start and end, in `sessions.json` beside the corpus's manifest.json:

    {"sessions": [{"id": "session_01", "file": "sessions/session_01.mp3", "speaker": "m7",
                   "source": "demo", "seconds": 95.3,
                   "verses": [{"surah": 112, "ayah": 1, "start": 1.234, "end": 3.456}, ...],
                   "non_recitation": [{"kind": "silence", "start": 10.0, "end": 13.5}, ...]}]}

`verses` lists what was recited, in the order it was recited (a verse said twice is listed twice, a
verse skipped is not listed), times in seconds from the start of the file. `non_recitation` lists
the stretches that hold no verse beyond the plain pauses between verses (KINDS): a long silence,
noise, speech that is not the Quran, or the basmala said before a surah other than Al-Fatiha (which
is no verse of that surah: quranft.matching.segments reports it as none). `speaker`, `source` and
`non_recitation` may be left out. Audio files are not opened here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quranft.errors import QuranftError
from quranft.fileio import read_json_list

SESSIONS_MANIFEST = "sessions.json"
KINDS = ("silence", "noise", "speech", "basmala")


class SessionsError(QuranftError, ValueError):
    """A sessions.json that does not follow the format above; the message names the file and session."""


@dataclass(frozen=True)
class Session:
    id: str
    file: str
    speaker: str | None
    source: str
    seconds: float
    verses: tuple[tuple[int, int, float, float], ...]  # (surah, ayah, start, end), in recited order
    non_recitation: tuple[tuple[str, float, float], ...]  # (kind, start, end), in time order


def _stretches(entry: dict[str, Any], key: str, labels: dict[str, type], where: str) -> list[tuple]:
    """The entries of the list `key`, each as a tuple of its `labels` (converted by their types) and
    its start and end in seconds, checked: every field present, 0 <= start < end <= seconds, none
    starting before the one before it ends."""
    items = entry.get(key, [])
    if not isinstance(items, list):
        raise SessionsError(f"{where}: '{key}' must be a list")
    stretches, previous_end = [], 0.0
    for number, item in enumerate(items):
        at = f"{where} {key}[{number}]"
        try:
            head = tuple(convert(item[name]) for name, convert in labels.items())
            start, end = float(item["start"]), float(item["end"])
        except (KeyError, TypeError, ValueError):
            names = ", ".join(f"{name} ({convert.__name__})" for name, convert in labels.items())
            raise SessionsError(f"{at}: needs {names}, start and end (seconds)") from None
        if not 0 <= start < end <= entry["seconds"]:
            raise SessionsError(f"{at}: start {start} and end {end} must satisfy 0 <= start < end <= seconds "
                                f"({entry['seconds']})")
        if start < previous_end:
            raise SessionsError(f"{at}: starts at {start}, before the one before it ends ({previous_end}): "
                                f"{key} must be in time order and must not overlap")
        previous_end = end
        stretches.append((*head, start, end))
    return stretches


def _session(entry: Any, path: Path, number: int) -> Session:
    if not isinstance(entry, dict) or not all(key in entry for key in ("id", "file", "seconds", "verses")):
        raise SessionsError(f"{path} session {number}: every session needs 'id', 'file', 'seconds' and 'verses'")
    where = f"{path} session {entry['id']!r}"
    seconds = entry["seconds"]
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise SessionsError(f"{where}: 'seconds' must be a positive number, not {seconds!r}")
    verses = _stretches(entry, "verses", {"surah": int, "ayah": int}, where)
    non_recitation = _stretches(entry, "non_recitation", {"kind": str}, where)
    for kind, start, end in non_recitation:
        if kind not in KINDS:
            raise SessionsError(f"{where}: non_recitation kind {kind!r} is not one of {', '.join(KINDS)}")
        if any(start < verse_end and verse_start < end for _, _, verse_start, verse_end in verses):
            raise SessionsError(f"{where}: the {kind} at {start}-{end} s overlaps a verse")
    return Session(id=str(entry["id"]), file=str(entry["file"]),
                   speaker=None if entry.get("speaker") is None else str(entry["speaker"]),
                   source=str(entry.get("source", "")), seconds=float(seconds),
                   verses=tuple(verses), non_recitation=tuple(non_recitation))


def load_sessions(corpus_dir: str | Path) -> list[Session]:
    """Read and check the corpus's sessions.json; [] when the corpus has none."""
    path = Path(corpus_dir) / SESSIONS_MANIFEST
    try:
        entries = read_json_list(path, "sessions", SessionsError)
    except FileNotFoundError:
        return []
    sessions, seen = [], set()
    for number, entry in enumerate(entries):
        session = _session(entry, path, number)
        if session.id in seen:
            raise SessionsError(f"{path} session {session.id!r}: duplicate id")
        seen.add(session.id)
        sessions.append(session)
    return sessions


def session_audio_files(corpus_dir: str | Path) -> list[str]:
    """Paths of the sessions' audio files that exist."""
    corpus_dir = Path(corpus_dir)
    return [str(corpus_dir / s.file) for s in load_sessions(corpus_dir) if (corpus_dir / s.file).is_file()]
