"""The long-form sessions of a benchmark corpus (sessions.json): read and checked."""

from __future__ import annotations

import json

import pytest

from quranft.data.sessions import Session, SessionsError, load_sessions, session_audio_files


def session(**changes) -> dict:
    """A good session entry, with `changes`: 113:5, the basmala, 114:1, then a long silence."""
    entry = {"id": "s1", "file": "sessions/s1.mp3", "speaker": "r1", "source": "demo", "seconds": 20.0,
             "verses": [{"surah": 113, "ayah": 5, "start": 1.0, "end": 4.0},
                        {"surah": 114, "ayah": 1, "start": 6.5, "end": 9.0}],
             "non_recitation": [{"kind": "basmala", "start": 4.5, "end": 6.0},
                                {"kind": "silence", "start": 10.0, "end": 15.0}]}
    return {**entry, **changes}


def write(folder, *sessions) -> None:
    (folder / "sessions.json").write_text(json.dumps({"sessions": list(sessions)}), encoding="utf-8")


def verse(surah, ayah, start, end) -> dict:
    return {"surah": surah, "ayah": ayah, "start": start, "end": end}


def test_a_corpus_without_sessions_has_none(tmp_path):
    assert load_sessions(tmp_path) == [] and session_audio_files(tmp_path) == []


def test_sessions_are_read_as_tuples_in_their_order(tmp_path):
    bare = {key: value for key, value in session(id="s2").items() if key not in ("speaker", "source", "non_recitation")}
    write(tmp_path, session(), bare)
    first, second = load_sessions(tmp_path)
    assert first == Session(id="s1", file="sessions/s1.mp3", speaker="r1", source="demo", seconds=20.0,
                            verses=((113, 5, 1.0, 4.0), (114, 1, 6.5, 9.0)),
                            non_recitation=(("basmala", 4.5, 6.0), ("silence", 10.0, 15.0)))
    assert (second.speaker, second.source, second.non_recitation) == (None, "", ())


def test_a_verse_said_twice_is_listed_twice(tmp_path):
    write(tmp_path, session(verses=[verse(1, 5, 1.0, 3.0), verse(1, 5, 3.5, 5.5)], non_recitation=[]))
    assert [v[:2] for v in load_sessions(tmp_path)[0].verses] == [(1, 5), (1, 5)]


def test_only_the_audio_files_that_exist_are_listed(tmp_path):
    write(tmp_path, session(), session(id="s2", file="sessions/s2.mp3"))
    (tmp_path / "sessions").mkdir()
    (tmp_path / "sessions" / "s2.mp3").write_bytes(b"audio")
    assert session_audio_files(tmp_path) == [str(tmp_path / "sessions" / "s2.mp3")]


# Each broken sessions.json, and what its error says besides the file's path.
BROKEN = {
    "bad JSON": ('{"sessions": [', "not valid JSON"),
    "no sessions list": ({"session": []}, "expected an object with a 'sessions' list"),
    "a missing key": ([{k: v for k, v in session().items() if k != "file"}],
                      "session 0: every session needs 'id', 'file', 'seconds' and 'verses'"),
    "seconds not a number": ([session(seconds="20")], "'s1': 'seconds' must be a positive number"),
    "a verse without its end": ([session(verses=[{"surah": 1, "ayah": 1, "start": 0.5}])],
                                "'s1' verses[0]: needs surah (int), ayah (int), start and end"),
    "a surah that is no number": ([session(verses=[verse("one", 1, 0.5, 1.0)])], "'s1' verses[0]: needs"),
    "verses out of order": ([session(verses=[verse(1, 2, 5.0, 6.0), verse(1, 1, 1.0, 2.0)], non_recitation=[])],
                            "'s1' verses[1]: starts at 1.0, before the one before it ends (6.0)"),
    "overlapping verses": ([session(verses=[verse(1, 1, 1.0, 3.0), verse(1, 2, 2.5, 4.0)], non_recitation=[])],
                           "verses must be in time order and must not overlap"),
    "a time past the end": ([session(verses=[verse(1, 1, 18.0, 20.5)], non_recitation=[])],
                            "'s1' verses[0]: start 18.0 and end 20.5 must satisfy 0 <= start < end <= seconds (20.0)"),
    "a negative time": ([session(non_recitation=[{"kind": "noise", "start": -1, "end": 0.5}])],
                        "'s1' non_recitation[0]: start -1.0"),
    "an empty stretch": ([session(verses=[verse(1, 1, 2.0, 2.0)], non_recitation=[])], "0 <= start < end"),
    "an unknown kind": ([session(non_recitation=[{"kind": "music", "start": 10.0, "end": 12.0}])],
                        "'s1': non_recitation kind 'music' is not one of silence, noise, speech, basmala"),
    "noise over a verse": ([session(non_recitation=[{"kind": "noise", "start": 3.0, "end": 5.0}])],
                           "'s1': the noise at 3.0-5.0 s overlaps a verse"),
    "a duplicate id": ([session(), session(file="sessions/other.mp3")], "session 's1': duplicate id"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_sessions_file_is_refused_naming_the_file_and_session(tmp_path, case):
    content, message = BROKEN[case]
    text = content if isinstance(content, str) else json.dumps(content if isinstance(content, dict) else
                                                              {"sessions": content})
    (tmp_path / "sessions.json").write_text(text, encoding="utf-8")
    with pytest.raises(SessionsError) as error:
        load_sessions(tmp_path)
    assert str(tmp_path / "sessions.json") in str(error.value) and message in str(error.value)
    assert isinstance(error.value, ValueError)
