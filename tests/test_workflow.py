"""The workflow as users run it: Snakemake on the demo corpus, dry runs and lint on both configs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import soundfile as sf

from conftest import REPO, snakemake
from quranft.data.benchmark_corpus import load_samples

pytestmark = pytest.mark.slow


def read_manifest(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_demo_bad_rows_land_in_the_report_with_their_reasons(demo_data_stage):
    report = json.loads((demo_data_stage / "results/data/report.json").read_text(encoding="utf-8"))
    quran = report["sources"]["quran_ayah_corpus"]["splits"]["train"]
    for reason in ("undecodable", "empty_text", "too_short", "too_long", "duplicate"):
        assert quran["dropped"][reason] == 1, reason
        assert len(quran["examples"][reason]) == 1
    retasy = report["sources"]["retasy"]["splits"]["train"]
    assert retasy["dropped"]["bad_label"] == 8  # keep_labels [correct, null]: multiple_aya and in_complete go too
    assert sorted(e.split(": ")[1] for e in retasy["examples"]["bad_label"]) == [
        "in_correct", "in_correct", "not_match_aya", "not_related_quran", "not_related_quran",
    ]
    assert retasy["dropped"]["empty_text"] == 1
    assert retasy["kept"] == 24 and retasy["dropped"]["over_cap"] == 0  # the trials ask for more than there is
    assert report["manifests"]["train"]["sources"]["retasy"]["rows"] == 24
    assert report["manifests"]["validation"]["sources"] == {"quran_ayah_corpus": report["manifests"]["validation"]["sources"]["quran_ayah_corpus"]}


def test_demo_leakage_guard_catches_every_planted_clip(demo_data_stage):
    report = json.loads((demo_data_stage / "results/data/report.json").read_text(encoding="utf-8"))
    matched = set()
    for source in report["sources"].values():
        for figures in source["splits"].values():
            assert figures["dropped"]["leaked"] == len(figures["leaked"])
            matched |= {entry["match"].split()[2] for entry in figures["leaked"]}
    planted = {s.id for s in load_samples(REPO / "demo" / "benchmark") if s.id.startswith("leak_")}
    assert matched == planted
    leaked_rows = sum(len(f["leaked"]) for s in report["sources"].values() for f in s["splits"].values())
    assert leaked_rows == 4  # one row each, two for the clip made of two training verses
    train_ids = {row["id"] for source in ("quran_ayah_corpus", "retasy")
                 for row in read_manifest(demo_data_stage / "results/data" / source / "train.jsonl")}
    for source in report["sources"].values():
        for figures in source["splits"].values():
            assert not {entry["id"] for entry in figures["leaked"]} & train_ids


def test_demo_manifests_point_at_16k_mono_audio_with_the_right_duration(demo_data_stage):
    data = demo_data_stage / "results/data" / "quran_ayah_corpus"
    for split in ("train", "validation"):
        rows = read_manifest(data / f"{split}.jsonl")
        assert rows
        for row in rows:
            info = sf.info(data / row["audio_filepath"])
            assert (info.samplerate, info.channels) == (16000, 1)
            assert info.frames / 16000 == pytest.approx(row["duration"], abs=1e-6)
            assert 0.6 <= row["duration"] <= 30.0
            assert row["text"] and row["text"] == " ".join(row["text"].split())
    ids = [row["id"] for row in read_manifest(data / "train.jsonl")]
    # The stereo and the 44.1 kHz rows of the demo are kept: down-mixed and resampled.
    assert "quran_ayah_corpus-train-0000059" in ids and "quran_ayah_corpus-train-0000072" in ids


def test_a_second_run_has_nothing_to_do(demo_data_stage):
    result = snakemake(demo_data_stage, "results/data/report.json", "-n",
                       "--configfile", str(demo_data_stage / "demo.yaml"))
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.parametrize("configs", [[], ["--configfile", "config/demo.yaml"]], ids=["real", "demo"])
def test_dry_run_and_lint_are_clean(configs):
    # In the repository, as users run it; the real config's dry run must not need the network.
    for args in (["-n"], ["--lint"]):
        result = subprocess.run(
            [sys.executable, "-m", "snakemake", *args, *configs],
            cwd=REPO, capture_output=True, text=True, timeout=300,
            env={"PATH": f"{sys.executable.rsplit('/', 1)[0]}:/usr/bin:/bin", "HF_HUB_OFFLINE": "1",
                 "HOME": str(REPO / ".snakemake")},
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        if args == ["--lint"]:
            assert "Congratulations, your workflow is in a good condition!" in output


@pytest.mark.parametrize("args, threads", [(["-c2", "--set-threads", "train_trial=8"], 2),
                                           (["--profile", "slurm", "-c64"], 8)], ids=["local-c2", "slurm"])
def test_training_threads_follow_the_cores_and_the_slurm_cpus_follow_the_threads(args, threads):
    """threads - 1 data-loading workers: a job of 8 CPUs loads with 7 (quranft.training.configure.threads_per_process)."""
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "-p", "--force", *args, "--configfile", "config/demo.yaml", "--",
         "results/v1/training_metadata.json"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={"PATH": f"{sys.executable.rsplit('/', 1)[0]}:/usr/bin:/bin", "HOME": str(REPO / ".snakemake")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    block = result.stdout.split("rule train_trial:")[1].split("\n\n")[0]
    assert f"threads: {threads}\n" in block and f"cpus_per_task={threads}," in block
    assert f" --threads {threads} " in block
