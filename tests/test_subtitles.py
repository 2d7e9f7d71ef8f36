"""identify's verses as subtitles (SubRip, WebVTT) and a table (TSV): the exact text for known
verses."""

from __future__ import annotations

import pytest

from quranft.deploy.subtitles import srt, timestamp, tsv_header, tsv_rows, vtt

# As identify records them (VerseSpan.as_dict and the surah's name); the second past an hour
VERSES = [
    {"surah": 103, "ayah": 1, "start": 0.48, "end": 3.2, "confidence": 0.912345, "label": "103:1",
     "surah_name": "Al-Asr (العصر)"},
    {"surah": 103, "ayah": 2, "start": 3661.2346, "end": 3665.0004, "confidence": 0.7, "label": "103:2",
     "surah_name": "Al-Asr (العصر)"},
]

SRT = """1
00:00:00,480 --> 00:00:03,200
103:1 Al-Asr (العصر)

2
01:01:01,235 --> 01:01:05,000
103:2 Al-Asr (العصر)

"""

VTT = """WEBVTT

00:00:00.480 --> 00:00:03.200
103:1 Al-Asr (العصر)

01:01:01.235 --> 01:01:05.000
103:2 Al-Asr (العصر)
"""

HEADER = "file\tstart\tend\tsurah\tayah\tlabel\tsurah_name\tconfidence\n"
ROWS = ("a.mp3\t0.480\t3.200\t103\t1\t103:1\tAl-Asr (العصر)\t0.912\n"
        "a.mp3\t3661.235\t3665.000\t103\t2\t103:2\tAl-Asr (العصر)\t0.700\n")


@pytest.mark.parametrize("seconds, srt_time, vtt_time", [
    (0, "00:00:00,000", "00:00:00.000"),
    (3661.2346, "01:01:01,235", "01:01:01.235"),  # to the nearest millisecond
    (59.9996, "00:01:00,000", "00:01:00.000"),  # rounding carries into the minutes
    (12.0004, "00:00:12,000", "00:00:12.000"),
    (100 * 3600 + 0.5, "100:00:00,500", "100:00:00.500"),
])
def test_timestamps_are_hours_minutes_seconds_and_milliseconds(seconds, srt_time, vtt_time):
    assert timestamp(seconds, ",") == srt_time and timestamp(seconds, ".") == vtt_time


def test_the_verses_as_srt_vtt_and_tsv():
    assert srt(VERSES) == SRT
    assert vtt(VERSES) == VTT
    assert tsv_header() == HEADER
    assert tsv_rows("a.mp3", VERSES) == ROWS


def test_no_verse_is_a_subtitle_without_cues_and_no_row():
    assert srt([]) == ""
    assert vtt([]) == "WEBVTT\n"
    assert tsv_rows("a.mp3", []) == ""


def test_a_file_name_with_a_tab_is_quoted_in_the_table():
    assert tsv_rows("odd\tname.mp3", VERSES[:1]).startswith('"odd\tname.mp3"\t0.480\t')
