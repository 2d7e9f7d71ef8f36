"""The long-form benchmark on real sessions: two of the demo's, by the demo base's int8 export,
heard whole as `identify` hears a recording and streamed in 0.5 s chunks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import DEMO, REPO, planned_jobs, snakemake
from quranft.data.sessions import load_sessions
from quranft.evaluation.longform_scoring import Timed, score_session

pytestmark = pytest.mark.slow


def two_sessions(folder):
    sessions = json.loads((DEMO / "benchmark" / "sessions.json").read_text(encoding="utf-8"))["sessions"][:2]
    for session in sessions:
        (folder / session["file"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DEMO / "benchmark" / session["file"], folder / session["file"])
    (folder / "sessions.json").write_text(json.dumps({"sessions": sessions}), encoding="utf-8")
    return folder


def quranft(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "quranft", *args], capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO / "src")), timeout=600)


def test_sessions_heard_whole_as_identify_hears_them_and_streamed_without_retractions(demo_base_export, tmp_path):
    corpus = two_sessions(tmp_path / "corpus")
    model = demo_base_export[0] / "model.int8.onnx"
    result = quranft("benchmark-longform", "--model", str(model), "--name", "base", "--corpus", str(corpus),
                     "--output", str(tmp_path / "longform.json"))
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "longform.json").read_text(encoding="utf-8"))
    assert list(record["formats"]) == ["int8"]
    figures = record["formats"]["int8"]
    sessions = load_sessions(corpus)
    assert figures["corpus"]["sessions"] == 2
    assert figures["offline"]["recited"] == figures["streamed"]["recited"] == sum(len(s.verses) for s in sessions)
    assert figures["streamed"]["retractions"] == 0
    # offline, the verses identify finds in each session's file (one process, a JSON line a file)
    heard = quranft("identify", "--model", str(model), "--json", *(str(corpus / s.file) for s in sessions))
    assert heard.returncode == 0, heard.stderr
    identified = [json.loads(line)["verses"] for line in heard.stdout.splitlines()]
    assert len(identified) == len(sessions) == 2
    for session, row, found in zip(sessions, figures["sessions"], identified):
        assert [(v["surah"], v["ayah"], v["start"]) for v in row["offline"]["verses"]] == \
            [(v["surah"], v["ayah"], v["start"]) for v in found]
        truth = [Timed(*verse) for verse in session.verses]
        assert row["offline"]["matched"] == score_session(
            truth, [Timed(v["surah"], v["ayah"], v["start"], v["end"]) for v in found], session.seconds)["matched"]
        # streamed, each verse emitted after it ended, in order, never before what preceded it
        emitted = row["streamed"]["verses"]
        assert all(v["emitted_at"] >= v["end"] for v in emitted)
        assert [v["emitted_at"] for v in emitted] == sorted(v["emitted_at"] for v in emitted)
        assert all(a["end"] <= b["start"] for a, b in zip(emitted, emitted[1:]))


def test_the_stage_runs_in_snakemake_on_a_models_export_and_a_setting_reruns_it(finished, demo_base_export):
    """In a finished demo working directory whose base int8 export is a real one (the demo base's):
    an edit of a long-form setting (one session) plans the seven long-form jobs and what reads them,
    and the base's job then runs for real and writes its longform.json."""
    workdir, config = finished
    graph = workdir / "results" / "base" / "export" / "model.int8.onnx"
    stamp = graph.stat()
    shutil.copyfile(demo_base_export[0] / "model.int8.onnx", graph)
    os.utime(graph, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # the export as old as the finished one
    values = yaml.safe_load(config.read_text(encoding="utf-8"))
    values["longform"]["sessions"] = 1
    config.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
    assert planned_jobs(snakemake(workdir, "-n", "--configfile", str(config)).stdout) == {
        "benchmark_longform": 7, "leaderboard": 1, "best_model": 1, "model_card": 7, "all": 1}
    target = "results/base/longform.json"
    snakemake(workdir, target, "-c1", "--configfile", str(config))
    record = json.loads((workdir / target).read_text(encoding="utf-8"))
    assert record["model"] == "base" and list(record["formats"]) == ["int8"]
    figures = record["formats"]["int8"]
    assert figures["corpus"]["ids"] == ["session_01"] and figures["settings"]["chunk_seconds"] == 0.5
    assert figures["offline"]["recited"] == 12 and figures["streamed"]["retractions"] == 0
    assert planned_jobs(snakemake(workdir, target, "-n", "--configfile", str(config)).stdout) == {}


def test_identify_streams_a_session_from_a_file_and_from_pcm_on_standard_input_alike(demo_base_export, tmp_path):
    """`identify --stream` prints each verse once confirmed, in order, never before its end; a
    microphone's raw 16 kHz 16-bit PCM piped in gives the same lines as the file it was read from."""
    import soundfile as sf

    from quranft.data.audio import load_audio

    # its first 30.3 s: the last chunk a part one (0.5 s chunks)
    audio = load_audio(DEMO / "benchmark" / "sessions" / "session_01.mp3")[: int(30.3 * 16000)]
    wav = tmp_path / "session.wav"
    sf.write(wav, audio, 16000, subtype="PCM_16")
    pcm = sf.read(wav, dtype="int16")[0].astype("<i2").tobytes()
    model = str(demo_base_export[0] / "model.int8.onnx")
    from_file = quranft("identify", "--stream", "--no-wait", "--format", "jsonl", "--model", model, str(wav))
    assert from_file.returncode == 0, from_file.stderr
    piped = subprocess.run([sys.executable, "-m", "quranft", "identify", "--stream", "--format", "jsonl", "--model",
                            model, "-"], input=pcm, capture_output=True, cwd=REPO, timeout=600,
                           env=dict(os.environ, PYTHONPATH=str(REPO / "src")))
    assert piped.returncode == 0, piped.stderr.decode()
    verses = [json.loads(line) for line in from_file.stdout.splitlines()]
    assert verses and piped.stdout.decode().splitlines() == from_file.stdout.splitlines()
    assert all(v["emitted_at"] >= v["end"] for v in verses)
    assert [v["start"] for v in verses] == sorted(v["start"] for v in verses)
    assert all(set(v) >= {"surah", "ayah", "start", "end", "confidence", "label", "surah_name"} for v in verses)
