"""The long-form sessions of a benchmark corpus (sessions.json): read and checked, and held out of
training by the leakage guard like the corpus's clips."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import DEMO, encoded, synth
from quranft.data.sessions import Session, SessionsError, load_sessions, session_audio_files

RATE = 16000


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


def test_the_leakage_guard_holds_a_sessions_audio_and_speaker_out_of_training(tmp_path):
    """A training row cut out of a session (one of its verses, re-encoded) is dropped as leaked, and
    the session's speaker is among the benchmark's."""
    from conftest import data_config, save_dataset
    from quranft.data.benchmark_index import SESSION_PREFIX, benchmark_speakers, build_index, write_index
    from quranft.data.prepare import prepare_source

    corpus = tmp_path / "corpus"
    (corpus / "sessions").mkdir(parents=True)
    (corpus / "clip.wav").write_bytes(encoded(synth(3.0, seed=1), fmt="WAV"))
    (corpus / "manifest.json").write_text(json.dumps({"samples": [
        {"id": "clip", "file": "clip.wav", "surah": 112, "ayah": 1}]}), encoding="utf-8")
    pause = np.zeros(RATE, np.float32)
    verses = [synth(3.0, seed=seed) for seed in (11, 12, 13)]
    audio = np.concatenate([pause, verses[0], pause, verses[1], pause, verses[2], pause])
    (corpus / "sessions" / "s1.mp3").write_bytes(encoded(audio, fmt="MP3"))
    write(corpus, session(seconds=len(audio) / RATE, non_recitation=[],
                          verses=[verse(112, ayah, 1.0 + 4.0 * number, 4.0 + 4.0 * number)
                                  for number, ayah in enumerate((1, 2, 3))]))

    index, skipped = build_index(corpus)
    assert not skipped and index.ids == ["clip", f"{SESSION_PREFIX}s1"]
    assert benchmark_speakers(corpus) == ["r1"]
    write_index(index, tmp_path / "fingerprints.npz", benchmark_speakers(corpus))
    rows = [{"audio": encoded(audio[5 * RATE : 8 * RATE]), "text": "the second verse, cut out of the session"},
            {"audio": encoded(synth(3.0, seed=4321)), "text": "a recording of its own"}]
    validation = [{"audio": encoded(synth(3.0, seed=4322)), "text": "another"}]
    config = data_config()
    source = {**config["sources"]["quran_ayah_corpus"],
              "dataset": str(save_dataset(tmp_path / "dataset", {"train": rows, "validation": validation}))}
    report = prepare_source("quran_ayah_corpus", source, config["data"], tmp_path / "out", tmp_path / "fingerprints.npz")
    [leak] = report["splits"]["train"]["leaked"]
    assert leak["id"] == "quran_ayah_corpus-train-0000000" and f"{SESSION_PREFIX}s1" in leak["match"]
    assert report["splits"]["train"]["kept"] == 1


def test_the_demo_sessions_audio_is_what_the_leakage_guard_indexes():
    """The workflow's index_benchmark takes every session's audio as input (rules/common.smk,
    benchmark_audio) and build_index fingerprints it (above)."""
    sessions = load_sessions(DEMO / "benchmark")
    assert session_audio_files(DEMO / "benchmark") == [str(DEMO / "benchmark" / s.file) for s in sessions]
    assert len(sessions) >= 10
