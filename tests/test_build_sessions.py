"""The corpus builder's long-form sessions (evaluation/build_sessions.py), from local datasets in the
real schemas (no network): per-verse recordings of reciters who recite runs of consecutive verses
(one across Al-Fatiha's end into Al-Baqara), and a dataset of speech that is not the Quran."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from test_build_corpus import write_parquet

from conftest import encoded, synth
from quranft.config import ConfigError, local_paths, validate_config
from quranft.data.benchmark_corpus import load_samples
from quranft.data.sessions import load_sessions
from quranft.quran import tanzil

RATE = 16000
RUNS = {"qari1": [(1, a) for a in range(1, 8)] + [(2, a) for a in range(1, 6)],
        "qari2": [(112, a) for a in range(1, 5)] + [(113, a) for a in range(1, 6)] + [(114, a) for a in range(1, 7)],
        "qari3": [(36, a) for a in range(1, 11)],
        "qari4": [(2, 255), (18, 10)]}


def reciters_like(path):
    """EveryAyah-like rows (audio, surah, ayah, reciter, text) of RUNS, each verse 0.8 to 1.6 s (the
    leakage guard's fingerprints need about 0.65 s: a shorter clip inside a session goes unseen)."""
    import datasets

    rows = [{"audio": encoded(synth(0.8 + 0.1 * (number % 9), seed=500 + number), fmt="WAV"), "reciter": reciter,
             "surah": surah, "ayah": ayah, "text": tanzil.verse(surah, ayah, "simple")}
            for number, (reciter, (surah, ayah)) in enumerate((r, v) for r, verses in RUNS.items() for v in verses)]
    return write_parquet(path / "data" / "train-00000-of-00001.parquet", rows, {
        "reciter": datasets.Value("string"), "surah": datasets.Value("int32"), "ayah": datasets.Value("int32"),
        "text": datasets.Value("string")})


def speech_like(path):
    """Speech that is not the Quran: a few clips of 2 to 4 s."""
    import datasets

    rows = [{"audio": encoded(synth(2 + number, seed=900 + number), fmt="FLAC"), "sentence": f"clip {number}"}
            for number in range(3)]
    return write_parquet(path / "data" / "train-00000-of-00001.parquet", rows, {"sentence": datasets.Value("string")})


def sessions_config(data, seed=11, speech=True, **sessions):
    settings = {"min_verses": 4, "max_verses": 8, "max_seconds": 40, "between_share": 1.0,
                "speech_source": {"dataset": str(data / "speech"), "split": "train"} if speech else None, **sessions}
    return validate_config({
        "base_model": "unused.nemo", "trials": {"names": []}, "data": {"include_retasy": False},
        "sources": {"quran_ayah_corpus": {"dataset": "unused", "splits": {"train": "train", "validation": "validation"}}},
        "benchmark": {"corpus": str(data / "corpus"), "build": {"seed": seed, "sessions": settings, "sources": [
            {"name": "qari", "dataset": str(data / "reciters"), "split": "train", "text_column": None,
             "surah_column": "surah", "ayah_column": "ayah", "speaker_column": "reciter",
             "singles": {"short": 2, "medium": 2}, "multi": {"count": 1, "min_verses": 2, "max_verses": 3},
             "sessions": 3}]}},
    })


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("sessions-data")
    reciters_like(path / "reciters")
    speech_like(path / "speech")
    return path


def build(config, out):
    from quranft.evaluation.build_corpus import build_corpus

    return build_corpus(config["benchmark"]["build"], out)


@pytest.fixture(scope="module")
def built(data):
    report = build(sessions_config(data), data / "corpus")
    return data / "corpus", report


def source_rows(data):
    import datasets

    return datasets.load_dataset("parquet", data_files=str(data / "reciters" / "data" / "*.parquet"),
                                 split="train").cast_column("audio", datasets.Audio(decode=False))


def test_sessions_join_consecutive_verses_of_one_reciter_exact_to_the_sample(built, data):
    from quranft.data.audio import load_audio, pcm16
    from quranft.evaluation.build_sessions import mushaf_order

    corpus, report = built
    sessions = load_sessions(corpus)
    entries = json.loads((corpus / "sessions.json").read_text())["sessions"]
    rows = source_rows(data)
    assert len(sessions) == 3 and report["sessions"]["count"] == 3
    assert report["sessions"]["minutes"] == round(sum(s.seconds for s in sessions) / 60, 2)
    for session, entry in zip(sessions, entries):
        audio, rate = sf.read(corpus / session.file, dtype="int16")
        assert rate == RATE and audio.ndim == 1 and len(audio) == round(session.seconds * RATE)
        places = [mushaf_order()[(surah, ayah)] for surah, ayah, _, _ in session.verses]
        assert places == list(range(places[0], places[0] + len(places))) and 4 <= len(places) <= 8
        assert {rows[v["row"]]["reciter"] for v in entry["verses"]} == {session.speaker}
        for verse, (surah, ayah, start, end) in zip(entry["verses"], session.verses):
            assert (rows[verse["row"]]["surah"], rows[verse["row"]]["ayah"]) == (surah, ayah)
            source = pcm16(load_audio(rows[verse["row"]]["audio"]["bytes"]))
            assert np.array_equal(audio[round(start * RATE):round(end * RATE)], source)


def test_pauses_are_silences_of_the_configured_range_and_sessions_fit_max_seconds(built):
    corpus, _ = built
    for session in load_sessions(corpus):
        audio, _ = sf.read(corpus / session.file, dtype="int16")
        assert session.seconds <= 40
        edges = [0.0, *(t for _, _, start, end in session.verses for t in (start, end)), session.seconds]
        stretches = [(start, end) for _, start, end in session.non_recitation]
        for start, end in zip(edges[::2], edges[1::2]):
            if any(start <= s and e <= end for s, e in stretches):
                continue  # the gap holds non-recitation
            assert 0.4 <= end - start <= 2.5 and not audio[round(start * RATE):round(end * RATE)].any()


def test_non_recitation_of_each_kind_lies_between_verses(built):
    from quranft.evaluation.build_sessions import NOISE_COLORS

    corpus, report = built
    entries = json.loads((corpus / "sessions.json").read_text())["sessions"]
    stretches = {s["kind"]: (entry, s) for entry in entries for s in entry["non_recitation"]}
    assert sorted(stretches) == ["noise", "silence", "speech"]  # between_share 1: one each, in turn
    assert all(len(entry["non_recitation"]) == 1 for entry in entries)
    for kind, (entry, stretch) in stretches.items():
        audio, _ = sf.read(corpus / entry["file"], dtype="int16")
        inside = audio[round(stretch["start"] * RATE):round(stretch["end"] * RATE)]
        before = [v for v in entry["verses"] if v["end"] <= stretch["start"]]
        after = [v for v in entry["verses"] if v["start"] >= stretch["end"]]
        assert before and after and len(before) + len(after) == len(entry["verses"])
        if kind == "silence":  # the whole gap
            assert (before[-1]["end"], after[0]["start"]) == (stretch["start"], stretch["end"])
            assert 3.0 <= stretch["end"] - stretch["start"] <= 8.0 and not inside.any()
        else:
            assert 0.4 <= stretch["start"] - before[-1]["end"] <= 2.5
            assert 0.4 <= after[0]["start"] - stretch["end"] <= 2.5
            assert np.sqrt(np.mean(inside.astype(float) ** 2)) > 100
    assert stretches["noise"][1]["noise"] in NOISE_COLORS and stretches["speech"][1]["speech_row"] in range(3)
    entry, noise = stretches["noise"]
    audio = sf.read(corpus / entry["file"], dtype="float32")[0]
    verses = np.concatenate([audio[round(v["start"] * RATE):round(v["end"] * RATE)] for v in entry["verses"]])
    inside = audio[round(noise["start"] * RATE):round(noise["end"] * RATE)]
    # -20 dB against the verses (the fades at its edges take a little off)
    assert -21.5 < 20 * np.log10(np.sqrt(np.mean(inside**2)) / np.sqrt(np.mean(verses**2))) < -19.5
    assert report["sessions"]["speech"]["clips_used"] == 1 and report["sessions"]["skipped"] == {}
    assert report["sources"]["qari"]["sessions"]["between"] == {"noise": 1, "silence": 1, "speech": 1}


def test_a_session_crosses_into_the_next_surah_and_no_row_is_in_a_clip_too(built):
    corpus, report = built
    sessions = load_sessions(corpus)
    crossing = [s for s in sessions if len({surah for surah, _, _, _ in s.verses}) > 1]
    assert crossing and report["sources"]["qari"]["sessions"]["crossing_surah"] == len(crossing)
    entries = json.loads((corpus / "sessions.json").read_text())["sessions"]
    session_rows = {v["row"] for entry in entries for v in entry["verses"]}
    clip_rows = {row for sample in load_samples(corpus) for row in sample.raw["rows"]}
    assert clip_rows and not session_rows & clip_rows
    assert report["sources"]["qari"]["picked"] == {"short": 2, "medium": 2, "long": 0, "multi": 1}


def test_the_same_seed_builds_the_same_sessions_and_another_seed_others(built, data, tmp_path):
    corpus, _ = built
    build(sessions_config(data), tmp_path / "again")
    assert (tmp_path / "again" / "sessions.json").read_bytes() == (corpus / "sessions.json").read_bytes()
    for session in load_sessions(corpus):
        assert (tmp_path / "again" / session.file).read_bytes() == (corpus / session.file).read_bytes()
    build(sessions_config(data, seed=12), tmp_path / "other")
    assert (tmp_path / "other" / "sessions.json").read_bytes() != (corpus / "sessions.json").read_bytes()


def test_without_a_speech_source_sessions_hold_silence_and_noise_and_the_report_says_so(data, tmp_path):
    from quranft.evaluation.build_sessions import NO_SPEECH_SOURCE

    report = build(sessions_config(data, speech=False), tmp_path / "corpus")
    kinds = [kind for s in load_sessions(tmp_path / "corpus") for kind, _, _ in s.non_recitation]
    assert sorted(kinds) == ["noise", "silence", "silence"]
    assert report["sessions"]["speech"] == {"source": None, "why": NO_SPEECH_SOURCE}


def test_what_cannot_be_made_is_counted_by_reason(data, tmp_path):
    """Three sessions of 11 or 12 verses: two runs are that long (qari1's 12, qari2's 15), none is
    left for the third; 11 verses with their pauses do not fit 12 s."""
    report = build(sessions_config(data, min_verses=11, max_verses=12, max_seconds=12), tmp_path / "corpus")
    sessions = report["sources"]["qari"]["sessions"]
    assert (sessions["wanted"], sessions["runs_found"], sessions["made"]) == (3, 2, 0)
    assert sessions["skipped"] == report["sessions"]["skipped"] == {"no_run": 1, "over_max_seconds": 2}
    assert json.loads((tmp_path / "corpus" / "sessions.json").read_text()) == {"sessions": []}


def test_session_config_errors_name_the_key(data):
    with pytest.raises(ConfigError, match="'benchmark.build.sessions.min_verses' .* at most .*max_verses"):
        sessions_config(data, min_verses=9)
    with pytest.raises(ConfigError, match="'benchmark.build.sessions.pauses' is unknown"):
        sessions_config(data, pauses=[1, 2])
    with pytest.raises(ConfigError, match="'benchmark.build.sessions.between.0' must be one of"):
        sessions_config(data, between=["music"])
    with pytest.raises(ConfigError, match="'benchmark.build.sessions.speech_source.dataset' is missing"):
        sessions_config(data, speech_source={"split": "train"})
    # a local speech source is checked like every local path the config names (before any run plans)
    missing = sessions_config(data, speech_source={"dataset": str(data / "no-such-speech"), "split": "train"})
    assert ("benchmark.build.sessions.speech_source.dataset", str(data / "no-such-speech")) in local_paths(missing)
    config = sessions_config(data)
    config["benchmark"]["build"]["sources"][0].update(speaker_column=None, multi={"count": 0})
    with pytest.raises(ConfigError, match="sources.0.sessions' needs 'benchmark.build.sources.0.speaker_column'"):
        validate_config(config)


@pytest.mark.parametrize("hold_out", [True, False])
def test_the_sessions_speakers_and_audio_are_kept_out_of_training(built, data, tmp_path, hold_out):
    """The leakage guard indexes the built sessions and names their speakers: a training source
    holding the same recordings loses every row of those speakers, or, with the hold-out off, the
    rows whose audio lies inside a session or is a clip."""
    from quranft.data.benchmark_index import benchmark_speakers, build_index, write_index
    from quranft.data.prepare import prepare_source

    corpus, _ = built
    index, skipped = build_index(corpus)
    assert not skipped and {f"session:{s.id}" for s in load_sessions(corpus)} <= set(index.ids)
    speakers = benchmark_speakers(corpus)
    assert {s.speaker for s in load_sessions(corpus)} <= set(speakers)
    write_index(index, tmp_path / "fingerprints.npz", speakers)
    config = validate_config({
        "base_model": "unused.nemo", "benchmark": {"corpus": str(corpus)}, "trials": {"names": []},
        "data": {"hold_out_benchmark_speakers": hold_out},
        "sources": {"quran_ayah_corpus": {"dataset": "unused", "splits": {"train": "train", "validation": "validation"}},
                    "retasy": {"dataset": str(data / "reciters"), "splits": {"train": "train"},
                               "speaker_column": "reciter"}},
    })
    report = prepare_source("retasy", config["sources"]["retasy"], config["data"], tmp_path / "prepared",
                            benchmark_index=tmp_path / "fingerprints.npz")
    dropped = report["splits"]["train"]["dropped"]
    entries = json.loads((corpus / "sessions.json").read_text())["sessions"]
    in_benchmark = {v["row"] for e in entries for v in e["verses"]} | {
        row for sample in load_samples(corpus) for row in sample.raw["rows"]}
    rows = source_rows(corpus.parent)
    of_speakers = sum(row["reciter"] in speakers for row in rows)
    expected = (of_speakers, 0) if hold_out else (0, len(in_benchmark))
    assert (dropped["benchmark_speaker"], dropped["leaked"]) == expected


def test_a_run_with_a_row_that_failed_is_cut_there_or_gives_way_to_a_spare(tmp_path):
    """make_sessions on two runs of 112:1-4 and 113:1-5, wanting one session of at least 4 verses:
    the first run's third row has no audio (it did not decode), so the spare is made; cut before its
    last row, the second run still makes a session of 4."""
    import random

    from quranft.evaluation.build_corpus import Candidate
    from quranft.evaluation.build_sessions import SpeechClips, make_sessions

    first = [Candidate(number, (112, number + 1), "columns", 100.0, False, "a") for number in range(4)]
    second = [Candidate(10 + number, (113, number + 1), "columns", 100.0, False, "b") for number in range(5)]
    audio = {c.row: synth(1.0, seed=c.row) for c in first + second if c.row not in (2, 14)}
    settings = {**sessions_config(tmp_path, speech=False)["benchmark"]["build"]["sessions"], "between": []}
    entries, report = make_sessions("qari", [first, second], audio, settings, random.Random(1),
                                    SpeechClips(None, 1), 1, tmp_path)
    assert [(v["surah"], v["ayah"]) for v in entries[0]["verses"]] == [(113, 1), (113, 2), (113, 3), (113, 4)]
    assert (report["made"], report["skipped"]) == (1, {"audio_failure": 1})


@pytest.mark.slow
def test_the_workflow_judges_a_built_corpus_s_sessions_and_rebuilds_on_its_speech_source(tmp_path):
    """A source asking for sessions: the long-form benchmark of every model reads the sessions
    manifest the build writes; a local speech source's files are the build's inputs (editing them
    rebuilds the corpus), as the sources' are."""
    from test_build_corpus import demo_build_settings

    from conftest import demo_config_file, planned_jobs, snakemake

    speech = speech_like(tmp_path / "speech")
    settings = demo_build_settings()
    settings["sources"][0].update(speaker_column="reciter_id", sessions=2)
    settings["sessions"] = {"speech_source": {"dataset": str(tmp_path / "speech"), "split": "train"}}
    config = demo_config_file(tmp_path, benchmark={"corpus": "results/benchmark_corpus", "build": settings})
    planned = snakemake(tmp_path, "-n", "--configfile", str(config)).stdout
    assert str(speech) in planned.split("rule build_benchmark_corpus:")[1].split("output:")[0]
    assert planned_jobs(planned)["benchmark_longform"] == 7
    longform = planned.split("rule benchmark_longform:")[1].split("output:")[0]
    assert "results/benchmark_corpus/sessions.json" in longform


@pytest.mark.slow
def test_built_sessions_of_real_speech_run_through_the_long_form_benchmark(demo_base_export, tmp_path):
    """The demo's validation voice (one espeak-ng voice reciting the demo's verses in order) given a
    reciter column, built into two sessions and judged by the demo base's int8 export: every verse
    recited is counted, the non-recitation is the session less its verses, to the millisecond."""
    import datasets
    from test_longform import quranft

    from conftest import DEMO

    voice = datasets.load_from_disk(str(DEMO / "quran_ayah_corpus"))["validation"]
    voice.add_column("reciter", ["validation-voice"] * len(voice)).to_parquet(
        str(tmp_path / "voice" / "data" / "train-00000-of-00001.parquet"))
    config = validate_config({
        "base_model": "unused.nemo", "trials": {"names": []}, "data": {"include_retasy": False},
        "sources": {"quran_ayah_corpus": {"dataset": "unused", "splits": {"train": "train", "validation": "validation"}}},
        "benchmark": {"corpus": str(tmp_path / "corpus"), "build": {
            "sessions": {"min_verses": 5, "max_verses": 8, "max_seconds": 60, "between_share": 1.0},
            "sources": [{"name": "voice", "dataset": str(tmp_path / "voice"), "split": "train",
                         "speaker_column": "reciter", "sessions": 2}]}},
    })
    assert build(config, tmp_path / "corpus")["sessions"]["count"] == 2
    result = quranft("benchmark-longform", "--model", str(demo_base_export[0] / "model.int8.onnx"), "--name", "base",
                     "--corpus", str(tmp_path / "corpus"), "--output", str(tmp_path / "longform.json"))
    assert result.returncode == 0, result.stderr
    figures = json.loads((tmp_path / "longform.json").read_text(encoding="utf-8"))["formats"]["int8"]
    sessions = load_sessions(tmp_path / "corpus")
    assert figures["offline"]["recited"] == figures["streamed"]["recited"] == sum(len(s.verses) for s in sessions)
    for session, row in zip(sessions, figures["sessions"]):
        spoken = sum(end - start for _, _, start, end in session.verses)
        assert row["offline"]["non_recitation_seconds"] == round(session.seconds - spoken, 3)
        assert all(v["emitted_at"] >= v["end"] for v in row["streamed"]["verses"])
    assert figures["streamed"]["retractions"] == 0
