"""identify's verses as subtitles (SubRip, WebVTT) and a table (TSV): the exact text for known
verses, and what `identify --format` writes where for a file with verses, one with none and one that
failed (the model replaced by its results; the command on a real model: tests/test_identify.py)."""

from __future__ import annotations

import io
import re

import pytest

from quranft.cli import build_parser
from quranft.deploy import identify
from quranft.deploy.identify import Identified, as_json, run
from quranft.deploy.subtitles import srt, timestamp, tsv_header, tsv_rows, vtt
from quranft.errors import QuranftError

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


# A file with verses, one with none, and one that failed, as identify_files yields them
RESULTS = [Identified("in/a.mp3", VERSES, "103:1-2"), Identified("in/b.m4a", [], "none"),
           Identified("in/c.wav", error="LibsndfileError: Format not recognised")]
ERROR_LINE = "in/c.wav\terror: LibsndfileError: Format not recognised\n"


@pytest.fixture
def identified(monkeypatch):
    """identify.run over RESULTS' files, its model replaced by their results."""
    monkeypatch.setattr(identify, "identify_files", lambda model, files, threads, windowing, min_confidence: iter(
        next(r for r in RESULTS if r.file == file) for file in files))
    return [result.file for result in RESULTS]


def test_subtitles_go_to_the_out_dir_one_a_file_and_a_failed_file_to_stderr(identified, tmp_path, capsys):
    out = io.StringIO()
    for fmt, expected in (("srt", SRT), ("vtt", VTT)):
        assert run("m.onnx", identified, 0, fmt, out, out_dir=tmp_path / fmt) == 1  # one file failed
        assert sorted(p.name for p in (tmp_path / fmt).iterdir()) == [f"a.{fmt}", f"b.{fmt}"]  # no temp file left
        assert (tmp_path / fmt / f"a.{fmt}").read_text(encoding="utf-8") == expected
        assert (tmp_path / fmt / f"b.{fmt}").read_text(encoding="utf-8") == ("" if fmt == "srt" else "WEBVTT\n")
        assert capsys.readouterr().err == ERROR_LINE
    assert out.getvalue() == ""


def test_a_single_file_s_subtitle_goes_to_stdout(identified, capsys):
    out = io.StringIO()
    assert run("m.onnx", identified[:1], 0, "srt", out) == 0
    assert out.getvalue() == SRT
    out = io.StringIO()
    assert run("m.onnx", identified[2:], 0, "vtt", out) == 1
    assert out.getvalue() == "" and capsys.readouterr().err == ERROR_LINE


def test_the_table_has_a_row_a_verse_and_a_failed_file_s_error_on_stderr(identified, capsys):
    out = io.StringIO()
    assert run("m.onnx", identified, 0, "tsv", out) == 1
    assert out.getvalue() == HEADER + ROWS.replace("a.mp3", "in/a.mp3")
    assert capsys.readouterr().err == ERROR_LINE


def test_text_and_jsonl_keep_each_file_and_its_error_on_stdout(identified, capsys):
    out = io.StringIO()
    assert run("m.onnx", identified, 0, "text", out) == 1
    assert out.getvalue() == ("in/a.mp3\t0.48-3.20\t103:1 Al-Asr (العصر)\tconfidence 0.91\n"
                              "in/a.mp3\t3661.23-3665.00\t103:2 Al-Asr (العصر)\tconfidence 0.70\n"
                              "in/b.m4a\tno verse\n" + ERROR_LINE)
    out = io.StringIO()
    assert run("m.onnx", identified, 0, "jsonl", out) == 1
    assert out.getvalue() == "".join(as_json(result) + "\n" for result in RESULTS)
    assert capsys.readouterr().err == ""


def test_what_cannot_be_written_is_refused_before_the_model_loads(monkeypatch, tmp_path):
    monkeypatch.setattr(identify, "identify_files", lambda *args: pytest.fail("the model was loaded"))
    identified = [result.file for result in RESULTS]
    (tmp_path / "a-file").write_text("")
    refused = {
        "srt is a subtitle a file: give --out-dir for 3 files": ("srt", identified, None),
        "--out-dir is for the subtitle formats (srt, vtt), not tsv": ("tsv", identified, tmp_path),
        f"in/a.mp3 and other/a.m4a would both write {tmp_path / 'a.vtt'}": ("vtt", ["in/a.mp3", "other/a.m4a"],
                                                                           tmp_path),
        f"--out-dir {tmp_path / 'a-file'}: File exists": ("srt", identified, tmp_path / "a-file"),
    }
    for message, (fmt, files, out_dir) in refused.items():
        with pytest.raises(QuranftError, match="^" + re.escape(message)):
            run("m.onnx", files, 0, fmt, io.StringIO(), out_dir=out_dir)


def test_json_is_format_jsonl_and_text_the_default(capsys):
    def parsed(*options):
        return build_parser().parse_args(["identify", "--model", "m.onnx", "a.mp3", *options])

    assert [parsed(*o).format for o in ([], ["--json"], ["--format", "jsonl"], ["--format", "vtt"])] == \
        ["text", "jsonl", "jsonl", "vtt"]
    with pytest.raises(SystemExit):
        parsed("--json", "--format", "srt")
    assert "not allowed with argument --json" in capsys.readouterr().err
