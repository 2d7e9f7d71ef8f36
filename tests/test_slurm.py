"""`snakemake --profile slurm` against a real one-node Slurm cluster on localhost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, demo_config_file, small_corpus, snakemake

pytestmark = pytest.mark.slow

# The profile asks for what a real cluster has (8 CPUs, a GPU, 64 GB for training); this one-node
# cluster has 2 CPUs and no GPU, so the run scales the requests down on the command line, the way
# a user adapts the profile to a cluster without editing it.
FIT_LOCAL = [
    # the profile's first status check after 5 s, then 10 s more after each check that finds no job
    # done (the plugin's back-off): this cluster's jobs take seconds, so the checks start at once
    "--slurm-init-seconds-before-status-checks", "1",
    "--set-threads", *(f"{rule}=1" for rule in ("prepare_quran_ayah_corpus", "prepare_retasy", "train_trial",
                                                  "average_checkpoints", "benchmark_model", "export_front_end",
                                                  "export_model", "benchmark_export")),
    "--set-resources",
    *(f"{rule}:{key}={value}" for rule in ("prepare_quran_ayah_corpus", "prepare_retasy", "train_trial",
                                           "average_checkpoints", "benchmark_model", "export_front_end",
                                           "export_model", "benchmark_export")
      for key, value in (("cpus_per_task", 1), ("mem_mb", 3000))),
    "train_trial:gpu=0",
]  # last: a test adds its own resources after it


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    state = tmp_path_factory.mktemp("slurm")
    subprocess.run([str(REPO / "scripts" / "slurm_local.sh"), "start", str(state)], check=True, timeout=600)
    yield state
    subprocess.run([str(REPO / "scripts" / "slurm_local.sh"), "stop", str(state)], check=False, timeout=60)


def run_profile(workdir: Path, *args: str, timeout: int = 1500) -> subprocess.CompletedProcess:
    """`snakemake --profile slurm` from the repository root, as the README says, into `workdir`."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", "slurm", "-d", str(workdir), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture(scope="module")
def slurm_run(slurm, tmp_path_factory, tiny_base):
    """The demo workflow through `snakemake --profile slurm`, with a tiny base model and two steps a
    trial, to its leaderboard: V2 alone (every other trial only repeats its jobs, at about 15 s of
    NeMo's start and Slurm's polling each; V1 trains in the two-device test below; V4 to V6's
    resolution runs on the host, as tests/test_trials.py runs it), on eight benchmark clips (this
    test checks how the jobs run, not what they score)."""
    workdir = tmp_path_factory.mktemp("slurm-run")
    config = demo_config_file(workdir, base_model=str(tiny_base),
                              trials={"names": ["v2"], "overrides": {"max_steps": 2, "val_interval": 2, "batch_size": 4,
                                                    "freeze_encoder_layers": 2, "save_top_k": 2,
                                                    "average_top_k": 2, "text_option": "map_missing"}},
                              # the browser check is tests/test_browser.py's: here it would be a 45 s Slurm job
                              export={"formats": ["int8"], "parity_clips": 4, "browser": False},
                              benchmark={"corpus": str(small_corpus(workdir / "corpus")), "threshold_clips": 4})
    result = run_profile(workdir, "--configfile", str(config), *FIT_LOCAL)
    return workdir, config, result


def test_the_demo_workflow_runs_through_slurm_to_its_leaderboard(slurm_run):
    workdir, _, result = slurm_run
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    for rule in ("prepare_quran_ayah_corpus", "train_trial", "average_checkpoints", "benchmark_model",
                 "export_front_end", "export_model", "benchmark_export"):
        assert f"rule {rule}:" in output, rule
    assert "submitted with SLURM jobid" in output
    assert "localrule base_model:" in output and "localrule leaderboard:" in output  # stay on the host
    board = json.loads((workdir / "results" / "leaderboard.json").read_text(encoding="utf-8"))
    models = [row["model"] for row in board["rows"]]  # in rank order
    assert sorted(models) == ["base", "v2"]
    assert all("versus_base" in row for row in board["rows"] if row["model"] != "base")
    assert json.loads((workdir / "results" / "best.json").read_text(encoding="utf-8"))["model"] in models
    assert all((workdir / "results" / model / "MODEL_CARD.md").is_file() for model in models)
    assert (workdir / "results" / "validation_wer.png").is_file()
    for name in ("training_metadata.json", "training_curves.png", "model.nemo", "averaging.json", "benchmark.json"):
        assert (workdir / "results" / "v2" / name).is_file(), name
    metadata = json.loads((workdir / "results" / "v2" / "training_metadata.json").read_text(encoding="utf-8"))
    assert metadata["trial_values"]["ctc_only"] is True and metadata["trial_values"]["freeze_encoder_layers"] == 2
    assert metadata["training"]["global_step"] == 2


def test_the_html_report_holds_the_results(slurm_run):
    workdir, config, _ = slurm_run
    snakemake(workdir, "--report", "report.html", "--configfile", str(config))
    html = (workdir / "report.html").read_text(encoding="utf-8", errors="replace")
    assert "<html" in html[:2000].lower()
    for text in ("leaderboard", "training_curves", "averaging.json", "benchmark.json"):
        assert text in html, text


def test_a_trial_on_two_devices_runs_as_two_slurm_tasks_each_on_its_share(slurm_run):
    """Under Slurm, Lightning's world size is the job's tasks: a training job on two devices holds
    two tasks and starts one process in each (here gloo DDP on the CPU: the code path of N GPUs)."""
    workdir, config, first = slurm_run
    assert first.returncode == 0
    values = yaml.safe_load(config.read_text(encoding="utf-8"))
    values["trials"]["names"].append("v1")  # a trial of its own: v1 trains here, on the prepared data
    values["trials"]["overrides"].update(max_steps=4, val_interval=4)
    config.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
    result = run_profile(workdir, "results/v1/training_metadata.json", "--configfile", str(config), *FIT_LOCAL,
                         "train_trial:tasks=2", timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    log = (workdir / "logs" / "train" / "v1.log").read_text(encoding="utf-8")
    assert "starting one Slurm task per device: srun --overlap --ntasks=2" in log
    metadata = json.loads((workdir / "results" / "v1" / "training_metadata.json").read_text(encoding="utf-8"))
    assert (metadata["device"]["devices"], metadata["device"]["strategy"]) == (2, "ddp")
    assert metadata["training"]["global_step"] == 4 and metadata["training"]["resumed_from_step"] is None
    ranks = [json.loads((workdir / "results" / "v1" / "logs" / "ranks" / f"rank{k}.json").read_text(encoding="utf-8"))
             for k in (0, 1)]
    # 4 steps of 2 batches of 4 clips (v1's grad_accum 2) on each rank
    assert [(r["rank"], r["world_size"], r["batches"], r["samples"]) for r in ranks] == [(0, 2, 8, 32), (1, 2, 8, 32)]
    assert not set(ranks[0]["sample_keys"]) & set(ranks[1]["sample_keys"])  # each rank its own share


def test_a_failing_rule_is_reported_with_its_log(slurm, tmp_path):
    # The demo corpus has one undecodable row in 175: a zero tolerance makes prepare fail.
    config = demo_config_file(tmp_path, data={"max_undecodable_fraction": 0.0},
                              benchmark={"corpus": str(small_corpus(tmp_path / "corpus")), "threshold_clips": 4})
    result = run_profile(tmp_path, "results/data/quran_ayah_corpus/train.jsonl", "--configfile", str(config),
                         *FIT_LOCAL, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Error in rule prepare_quran_ayah_corpus" in output
    assert "could not be decoded, above data.max_undecodable_fraction=0.0" in output  # the log, shown
    assert not (tmp_path / "results" / "data" / "quran_ayah_corpus" / "train.jsonl").exists()
