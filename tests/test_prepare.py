"""The data stage on small datasets made here: drop reasons, audio format, determinism, atomicity."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf
import yaml

from conftest import REPO, data_config, encoded, save_dataset, synth
from quranft.config import validate_config
from quranft.data.benchmark_index import write_index
from quranft.data.fingerprint import FingerprintIndex, fingerprint
from quranft.data.prepare import DataStageError, prepare_source
from quranft.data.sources import SourceError, resolve_format

TEXT = "قُلْ هُوَ ٱللَّهُ أَحَدٌ"


def good_rows(count: int, seed: int = 0, seconds: float = 1.5) -> list[dict]:
    return [{"audio": encoded(synth(seconds, seed=seed + i)), "text": f"{TEXT} {i}"} for i in range(count)]


@pytest.fixture
def leak_index(tmp_path):
    """A benchmark fingerprint index holding one clip: the audio of seed 500."""
    index = FingerprintIndex()
    index.add("bench_leak", fingerprint(synth(2.0, seed=500), 16000))
    path = tmp_path / "fingerprints.npz"
    write_index(index, path)
    return path


def run(tmp_path, splits, source_overrides=None, benchmark_index=None, workers=1, **data):
    """prepare_source on the main corpus made of `splits`, saved with save_to_disk."""
    dataset = save_dataset(tmp_path / "dataset", splits)
    config = data_config(**data)
    source = config["sources"]["quran_ayah_corpus"]
    source.update(dataset=str(dataset), **(source_overrides or {}))
    return prepare_source("quran_ayah_corpus", source, config["data"], tmp_path / "out", benchmark_index,
                          workers)


def written_audio(out) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in (out / "audio").rglob("*") if p.is_file())


def manifest_audio(out) -> list[str]:
    return sorted(json.loads(line)["audio_filepath"] for split in ("train", "validation")
                  for line in (out / f"{split}.jsonl").read_text(encoding="utf-8").splitlines())


@pytest.mark.parametrize("workers", [1, 2])
def test_every_drop_reason_is_counted_with_examples(tmp_path, leak_index, workers):
    train = good_rows(3) + [
        {"audio": b"not audio at all", "text": TEXT},  # undecodable
        {"audio": encoded(synth(1.0, seed=50)), "text": "  \n "},  # empty text
        {"audio": encoded(synth(0.4, seed=51)), "text": TEXT},  # too short
        {"audio": encoded(synth(31.0, seed=52)), "text": TEXT},  # too long
        {"audio": encoded(synth(2.0, seed=500), fmt="MP3"), "text": TEXT},  # leaked
        {"audio": encoded(synth(1.5, seed=0)), "text": TEXT},  # duplicate of train row 0
        {"audio": encoded(synth(1.5, seed=60)), "text": "kept"},
    ] + good_rows(4, seed=100)
    validation = good_rows(2, seed=200)
    report = run(tmp_path, {"train": train, "validation": validation}, benchmark_index=leak_index,
                 workers=workers, max_train_samples=len(train), max_undecodable_fraction=0.5)
    figures = report["splits"]["train"]
    assert figures["dropped"] == {
        "undecodable": 1, "empty_text": 1, "bad_label": 0, "too_short": 1, "too_long": 1,
        "leaked": 1, "benchmark_speaker": 0, "duplicate": 1, "over_cap": 0,
    }
    assert figures["drawn"] == {"method": "dataset order", "why": "no cap below the split's rows"}
    assert figures["kept"] == 8 and figures["rows_read"] == figures["rows_total"] == len(train)
    assert figures["examples"]["undecodable"][0].startswith("quran_ayah_corpus-train-0000003: ")
    assert figures["examples"]["too_short"] == ["quran_ayah_corpus-train-0000005: 0.400 s"]
    assert figures["examples"]["duplicate"] == [
        "quran_ayah_corpus-train-0000008: same audio as quran_ayah_corpus-train-0000000"
    ]
    assert figures["leaked"][0]["id"] == "quran_ayah_corpus-train-0000007"
    assert "bench_leak" in figures["leaked"][0]["match"]
    written = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert written == json.loads(json.dumps(report))
    # the workers write every row they keep; the duplicate's file and those decoded past the cap go
    assert written_audio(tmp_path / "out") == manifest_audio(tmp_path / "out")
    assert len(manifest_audio(tmp_path / "out")) == 8 + 2


def test_under_a_cap_the_rows_kept_are_a_seeded_sample_that_covers_a_split_sorted_by_speaker(tmp_path):
    """Validation rows sorted by speaker (10 speakers, 8 rows each) under a cap of 10: the first
    rows would all be one speaker's; the drawn ones cover most speakers, the same for the same
    seed, others for another seed; the rows left unread are counted and named."""
    validation = [{"audio": encoded(synth(1.0, seed=1000 + 8 * speaker + take)), "text": f"{TEXT} {take}",
                   "id": f"spk{speaker:02d}-{take}"} for speaker in range(10) for take in range(8)]
    splits = {"train": [{**row, "id": f"train-{n}"} for n, row in enumerate(good_rows(2))], "validation": validation}

    def drawn(seed):
        report = run(tmp_path, splits, source_overrides={"id_column": "id"}, max_val_samples=10, seed=seed)
        ids = [json.loads(line)["id"] for line in (tmp_path / "out" / "validation.jsonl").read_text().splitlines()]
        return report["splits"]["validation"], ids

    figures, ids = drawn(seed=0)
    assert len(ids) == 10 and len({row_id.split("-")[0] for row_id in ids}) >= 5
    assert figures["drawn"]["method"] == "seeded permutation"
    assert (figures["kept"], figures["dropped"]["over_cap"], figures["rows_read"]) == (10, 70, 80)
    kept_rows = {f"row {8 * int(i[3:5]) + int(i.split('-')[1])}" for i in ids}  # spkSS-T is row 8 * SS + T
    assert len(figures["examples"]["over_cap"]) == 5 and not set(figures["examples"]["over_cap"]) & kept_rows
    assert drawn(seed=0)[1] == ids and drawn(seed=1)[1] != ids
    assert written_audio(tmp_path / "out") == manifest_audio(tmp_path / "out")


def test_bad_labels_are_dropped_and_text_comes_from_the_configured_column(tmp_path):
    rows = [
        {"audio": encoded(synth(1.2, seed=i)), "Aya": f"{TEXT}  {i}", "final_label": label}
        for i, label in enumerate(["correct", "in_correct", None, "not_match_aya", "not_related_quran", "multiple_aya"])
    ]
    dataset = save_dataset(tmp_path / "retasy", {"train": rows}, "parquet")
    config = data_config()
    source = {
        **config["sources"]["quran_ayah_corpus"], "dataset": str(dataset), "splits": {"train": "train"},
        "text_column": "Aya", "label_column": "final_label",
        "drop_labels": ["in_correct", "not_related_quran", "not_match_aya"],
    }
    report = prepare_source("retasy", source, config["data"], tmp_path / "out")
    assert report["splits"]["train"]["dropped"]["bad_label"] == 3
    manifest = [json.loads(line) for line in (tmp_path / "out" / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [row["id"] for row in manifest] == ["retasy-train-0000000", "retasy-train-0000002", "retasy-train-0000005"]
    assert manifest[0]["text"] == f"{TEXT} 0"  # white space normalised, diacritics kept
    assert manifest[0]["source"] == "retasy"


LABELS = ["correct", "in_correct", None, "multiple_aya", "in_complete", "correct", None, "not_match_aya"]


@pytest.fixture
def labelled(tmp_path):
    """A RetaSy-like parquet with every kind of final_label, unlabelled rows included (row 6 leaks),
    and a function giving its source as the validated config has it with the given label lists."""
    rows = [{"audio": encoded(synth(1.2, seed=500 if i == 6 else i)), "Aya": f"{TEXT} {i}", "final_label": label}
            for i, label in enumerate(LABELS)]
    dataset = str(save_dataset(tmp_path / "retasy", {"train": rows}, "parquet"))

    def configured(**labels):
        config = data_config()
        config["sources"]["retasy"] = {"dataset": dataset, "splits": {"train": "train"}, "text_column": "Aya",
                                       "label_column": "final_label", **labels}
        return validate_config(config)["sources"]["retasy"], config["data"]

    return configured


@pytest.mark.parametrize("labels, kept", [
    ({"keep_labels": ["correct", None]}, [0, 2, 5]),
    ({"keep_labels": ["correct"]}, [0, 5]),
    ({"drop_labels": ["in_correct", "not_match_aya", None]}, [0, 3, 4, 5]),
])
def test_keep_or_drop_labels_with_null_for_the_unlabelled_rows(tmp_path, labelled, leak_index, labels, kept):
    source, data = labelled(**labels)
    prepare_source("retasy", source, data, tmp_path / "out", leak_index)
    manifest = [json.loads(line) for line in (tmp_path / "out" / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [row["id"] for row in manifest] == [f"retasy-train-{i:07d}" for i in kept]


def test_the_report_counts_kept_and_dropped_rows_per_label(tmp_path, labelled, leak_index):
    source, data = labelled(keep_labels=["correct", None])
    report = prepare_source("retasy", source, data, tmp_path / "out", leak_index)
    figures = report["splits"]["train"]
    assert figures["labels"] == {
        "(unlabelled)": {"kept": 1, "dropped": {"leaked": 1}},
        "correct": {"kept": 2, "dropped": {}},
        "in_complete": {"kept": 0, "dropped": {"bad_label": 1}},
        "in_correct": {"kept": 0, "dropped": {"bad_label": 1}},
        "multiple_aya": {"kept": 0, "dropped": {"bad_label": 1}},
        "not_match_aya": {"kept": 0, "dropped": {"bad_label": 1}},
    }
    assert figures["dropped"]["bad_label"] == 4 and figures["kept"] == 3
    assert report["settings"]["keep_labels"] == ["correct", None]


def test_written_audio_is_16k_mono_and_matches_the_manifest(tmp_path):
    train = [
        {"audio": encoded(synth(2.0, 44100, seed=1, channels=2), 44100, "WAV"), "text": TEXT},
        {"audio": encoded(synth(1.7, 22050, seed=2), 22050, "MP3"), "text": TEXT},
        {"audio": encoded(synth(1.3, 48000, seed=3, channels=2), 48000, "OGG"), "text": TEXT},
    ]
    run(tmp_path, {"train": train, "validation": good_rows(1, seed=9)})
    lines = (tmp_path / "out" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    assert "\\u" not in "".join(lines) and TEXT in lines[0]  # UTF-8 Arabic, not escapes
    rows = [json.loads(line) for line in lines]
    assert [set(r) for r in rows] == [{"audio_filepath", "duration", "text", "id", "source", "audio_sha1"}] * 3
    for row, seconds in zip(rows, (2.0, 1.7, 1.3)):
        info = sf.info(tmp_path / "out" / row["audio_filepath"])
        assert (info.samplerate, info.channels, info.format) == (16000, 1, "FLAC")
        assert info.frames / 16000 == pytest.approx(row["duration"], abs=1e-6)
        assert row["duration"] == pytest.approx(seconds, abs=0.06)


def test_two_runs_write_byte_identical_manifests_whatever_the_workers(tmp_path):
    splits = {"train": good_rows(40, seed=300) + [{"audio": b"junk", "text": TEXT}], "validation": good_rows(5, seed=400)}
    dataset = save_dataset(tmp_path / "dataset", splits)
    config = data_config(max_train_samples=30)
    source = {**config["sources"]["quran_ayah_corpus"], "dataset": str(dataset)}
    outputs = []
    for number, workers in enumerate((1, 2)):
        out = tmp_path / f"out{number}"
        prepare_source("quran_ayah_corpus", source, config["data"], out, workers=workers)
        outputs.append(out)
    for name in ("train.jsonl", "validation.jsonl", "report.json"):
        assert (outputs[0] / name).read_bytes() == (outputs[1] / name).read_bytes(), name
    audio = written_audio(outputs[0])
    assert audio == written_audio(outputs[1]) == manifest_audio(outputs[0]) and len(audio) == 35
    assert all((outputs[0] / p).read_bytes() == (outputs[1] / p).read_bytes() for p in audio)


def test_a_row_in_train_repeating_validation_is_dropped_from_train(tmp_path):
    shared = {"audio": encoded(synth(1.5, seed=77)), "text": TEXT}
    report = run(tmp_path, {"train": [shared] + good_rows(2, seed=1), "validation": [shared]})
    assert report["splits"]["validation"]["kept"] == 1
    assert report["splits"]["train"]["dropped"]["duplicate"] == 1


def test_too_many_undecodable_rows_stop_with_the_source_and_rows_named(tmp_path):
    train = good_rows(3) + [{"audio": b"junk %d" % i, "text": TEXT} for i in range(2)]
    with pytest.raises(DataStageError) as error:
        run(tmp_path, {"train": train, "validation": good_rows(1, seed=50)}, max_undecodable_fraction=0.1)
    message = str(error.value)
    assert "source 'quran_ayah_corpus' split 'train': 2 of 5 rows (40.0%) could not be decoded" in message
    assert "quran_ayah_corpus-train-0000003" in message and "quran_ayah_corpus-train-0000004" in message
    assert not (tmp_path / "out" / "train.jsonl").exists()
    assert not (tmp_path / "out" / "report.json").exists()
    assert not list((tmp_path / "out").glob(".audio.tmp-*"))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_fault_in_a_worker_stops_the_stage_naming_the_row(tmp_path, workers):
    """Not undecodable audio (a counted drop) but a fault, here writing a format that does not exist."""
    validation = [{"audio": encoded(synth(0.3, seed=1)), "text": TEXT}, {"audio": b"junk", "text": TEXT}]
    dataset = save_dataset(tmp_path / "dataset", {"validation": validation + good_rows(2, seed=2),
                                                  "train": good_rows(1)})
    config = data_config(max_undecodable_fraction=0.9)
    source = {**config["sources"]["quran_ayah_corpus"], "dataset": str(dataset)}
    data = {**config["data"], "audio_format": "nonesuch"}  # past the schema, which would refuse it
    with pytest.raises(DataStageError) as error:
        prepare_source("quran_ayah_corpus", source, data, tmp_path / "out", workers=workers)
    assert str(error.value).startswith(
        "source 'quran_ayah_corpus' split 'validation': row quran_ayah_corpus-validation-0000002: "
    )
    assert "nonesuch" in str(error.value).lower()
    assert not (tmp_path / "out" / "audio").exists() and not list((tmp_path / "out").glob(".audio.tmp-*"))


def test_missing_column_and_split_are_named(tmp_path):
    with pytest.raises(SourceError, match="column\\(s\\) transcript not found; the dataset has audio, text"):
        run(tmp_path, {"train": good_rows(1), "validation": good_rows(1)}, source_overrides={"text_column": "transcript"})
    with pytest.raises(SourceError, match="no split 'dev'"):
        run(tmp_path / "b", {"train": good_rows(1), "validation": good_rows(1)},
            source_overrides={"splits": {"train": "train", "validation": "dev"}})


def test_local_formats_are_recognised(tmp_path):
    save_dataset(tmp_path / "disk", {"train": good_rows(1)})
    save_dataset(tmp_path / "pq", {"train": good_rows(1)}, "parquet")
    (tmp_path / "folder").mkdir()
    sf.write(tmp_path / "folder" / "a.wav", synth(1.0), 16000)
    assert resolve_format({"dataset": str(tmp_path / "disk")}) == "disk"
    assert resolve_format({"dataset": str(tmp_path / "pq")}) == "parquet"
    assert resolve_format({"dataset": str(next((tmp_path / "pq").rglob("*.parquet")))}) == "parquet"
    assert resolve_format({"dataset": str(tmp_path / "folder")}) == "audiofolder"
    assert resolve_format({"dataset": "rabah2026/Quran-Ayah-Corpus"}) == "hub"


def test_an_audio_folder_source_is_read(tmp_path):
    folder = tmp_path / "folder"
    (folder / "train").mkdir(parents=True)
    for i in range(3):
        sf.write(folder / "train" / f"clip{i}.wav", synth(1.0 + i / 10, 22050, seed=i), 22050)
    (folder / "train" / "metadata.csv").write_text(
        "file_name,transcription\n" + "".join(f"clip{i}.wav,{TEXT} {i}\n" for i in range(3)), encoding="utf-8"
    )
    config = data_config()
    source = {**config["sources"]["quran_ayah_corpus"], "dataset": str(folder), "splits": {"train": "train"},
              "text_column": "transcription"}
    report = prepare_source("quran_ayah_corpus", source, config["data"], tmp_path / "out")
    assert report["splits"]["train"]["kept"] == 3


def test_a_streamed_split_under_a_cap_is_drawn_through_a_seeded_shuffle_buffer(tmp_path):
    """An audio folder streams (its length unknown): under a cap, its rows come through a shuffle
    buffer, the same for the same seed; the files, sorted by speaker, are not taken in order."""
    folder = tmp_path / "folder" / "train"
    folder.mkdir(parents=True)
    names = [f"spk{speaker}_{take}.wav" for speaker in range(4) for take in range(6)]
    for number, name in enumerate(names):
        sf.write(folder / name, synth(1.0, seed=3000 + number), 16000)
    (folder / "metadata.csv").write_text("file_name,transcription\n" + "".join(f"{n},{TEXT} {i}\n" for i, n in
                                                                               enumerate(names)), encoding="utf-8")
    config = data_config(max_train_samples=6, shuffle_buffer_size=24)
    source = {**config["sources"]["quran_ayah_corpus"], "dataset": str(folder.parent), "splits": {"train": "train"},
              "text_column": "transcription"}

    def texts(out):
        report = prepare_source("quran_ayah_corpus", source, config["data"], tmp_path / out)
        rows = [json.loads(line) for line in (tmp_path / out / "train.jsonl").read_text().splitlines()]
        return report["splits"]["train"], [int(row["text"].split()[-1]) for row in rows]

    figures, drawn = texts("a")
    assert figures["drawn"]["method"] == "shuffle buffer" and figures["drawn"]["buffer_size"] == 24
    assert len(drawn) == 6 and drawn != list(range(6)) and len({number // 6 for number in drawn}) >= 2
    assert texts("b")[1] == drawn


def test_a_killed_run_leaves_no_complete_looking_output_and_a_rerun_completes(tmp_path):
    dataset = save_dataset(tmp_path / "dataset", {"train": good_rows(400, seconds=6.0), "validation": good_rows(2, seed=900)})
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text(encoding="utf-8"))
    config["sources"] = {"quran_ayah_corpus": {"dataset": str(dataset), "splits": {"train": "train", "validation": "validation"}}}
    config["data"] = {"include_retasy": False}
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "quranft", "prepare-source", "--config", str(config_path),
               "--source", "quran_ayah_corpus", "--out-dir", str(out)]
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(out.glob(".audio.tmp-*/train/*.flac"))) < 20:
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "train.jsonl").exists() and not (out / "report.json").exists()
    assert not (out / "audio").exists()  # only the staging folder, which is not an output
    subprocess.run(command, env=env, check=True, capture_output=True)
    assert len((out / "train.jsonl").read_text(encoding="utf-8").splitlines()) == 400
    assert not list(out.glob(".audio.tmp-*"))
    assert len(list((out / "audio" / "train").glob("*.flac"))) == 400


def test_a_kill_between_the_steps_of_the_audio_swap_loses_nothing_and_a_rerun_completes(tmp_path, monkeypatch):
    """The new audio folder takes the old one's place in two renames (fileio.replace_dir): old one
    aside, new one in. Killed between them, the old audio is still on disk, and a re-run swaps in a
    complete folder and clears what the killed run left."""
    splits = {"train": good_rows(3), "validation": good_rows(1, seed=50)}
    run(tmp_path, splits)
    out = tmp_path / "out"
    before = {path: (out / path).read_bytes() for path in written_audio(out)}  # audio/<split>/<file>
    rename = Path.rename

    def killed_after_the_old_folder_moves_aside(self, target):
        if self.name.startswith(".audio.tmp-"):
            raise KeyboardInterrupt("killed between the two renames")
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", killed_after_the_old_folder_moves_aside)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, splits)
    monkeypatch.undo()
    [aside] = out.glob(".audio.old-*")
    assert {path: (aside / Path(path).relative_to("audio")).read_bytes() for path in before} == before
    assert not (out / "audio").exists() and not list(out.glob(".audio.tmp-*"))
    run(tmp_path, splits)
    assert written_audio(out) == manifest_audio(out) == sorted(before)
    assert not list(out.glob(".audio.old-*")) and not list(out.glob(".audio.tmp-*"))
