"""A recording's verses, as identify finds them, as subtitles (SubRip .srt, WebVTT .vtt) that players
and subtitle editors open, or as rows of a tab-separated table (spreadsheets, label editors).

Pure functions from identify's verse records (matching.segments.VerseSpan.as_dict with the surah's
name as `surah_name`: start and end in seconds, surah, ayah, label, confidence) to text. A cue's
text is the verse's label and its surah's name: "103:1 Al-Asr (العصر)".
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence

TSV_COLUMNS = ("file", "start", "end", "surah", "ayah", "label", "surah_name", "confidence")


def timestamp(seconds: float, decimal_mark: str) -> str:
    """`seconds` as HH:MM:SS, then the milliseconds after `decimal_mark` (SubRip's ",", WebVTT's
    "."), to the nearest millisecond: 3661.2346 -> 01:01:01,235. Past 99 hours the hours take more
    digits."""
    milliseconds = round(seconds * 1000)
    hours, milliseconds = divmod(milliseconds, 3_600_000)
    minutes, milliseconds = divmod(milliseconds, 60_000)
    whole_seconds, milliseconds = divmod(milliseconds, 1000)
    return f"{hours:02d}:{minutes:02d}:{whole_seconds:02d}{decimal_mark}{milliseconds:03d}"


def cue_text(verse: dict) -> str:
    return f"{verse['label']} {verse['surah_name']}"


def srt(verses: Sequence[dict]) -> str:
    """SubRip: a cue per verse, numbered from 1, each ended by a blank line (as the `srt` package
    composes them); no verse, no cue (an empty file)."""
    return "".join(f"{number}\n{timestamp(verse['start'], ',')} --> {timestamp(verse['end'], ',')}\n"
                   f"{cue_text(verse)}\n\n" for number, verse in enumerate(verses, start=1))


def vtt(verses: Sequence[dict]) -> str:
    """WebVTT: the WEBVTT header, then a cue per verse, each after a blank line; no verse, the
    header alone."""
    return "WEBVTT\n" + "".join(f"\n{timestamp(verse['start'], '.')} --> {timestamp(verse['end'], '.')}\n"
                                f"{cue_text(verse)}\n" for verse in verses)


# A subtitle format's name, which is also its file's suffix, and its writer
SUBTITLES: dict[str, Callable[[Sequence[dict]], str]] = {"srt": srt, "vtt": vtt}


def _tsv(rows: Sequence[Sequence[object]]) -> str:
    """Tab-separated lines; a field holding a tab, a newline or a quote is quoted, as spreadsheets
    read it."""
    buffer = io.StringIO()
    csv.writer(buffer, dialect="excel-tab", lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def tsv_header() -> str:
    return _tsv([TSV_COLUMNS])


def tsv_rows(file: str, verses: Sequence[dict]) -> str:
    """A row per verse of `file`, in TSV_COLUMNS' order, times and confidence to three decimals
    (seconds, the millisecond); no verse, no row."""
    return _tsv([(file, f"{verse['start']:.3f}", f"{verse['end']:.3f}", verse["surah"], verse["ayah"],
                  verse["label"], verse["surah_name"], f"{verse['confidence']:.3f}") for verse in verses])
