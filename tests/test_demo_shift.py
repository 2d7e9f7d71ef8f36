"""The demo as a domain shift, scaled down: the committed demo base (pretrained on the base domain)
fine-tuned a few steps on the shifted-domain sources changes what it predicts on the benchmark, and
the leaderboard names every clip it recovered and regressed on."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from scipy.stats import binomtest

from conftest import REPO, demo_config_file, snakemake

pytestmark = pytest.mark.slow


def test_a_short_fine_tune_changes_the_predictions_and_the_leaderboard_lists_the_changes(demo_data_stage, tmp_path):
    # the session's demo data stage, copied with its times and Snakemake's records: prepared once
    tmp_path = Path(shutil.copytree(demo_data_stage, tmp_path / "workdir", symlinks=True, copy_function=shutil.copy2))
    demo = yaml.safe_load((REPO / "config" / "demo.yaml").read_text(encoding="utf-8"))
    overrides = {**demo["trials"]["overrides"], "max_steps": 12, "val_interval": 12, "warmup_steps": 2,
                 "save_top_k": 1, "average_top_k": 1}
    # one checkpoint kept: averaging keeps it as it is, with no guard to decode the validation clips
    # the confidence threshold chosen on ten validation clips (not all 42): this test judges the clips' verdicts
    config = demo_config_file(tmp_path, base_model=str(REPO / "demo" / "base_model.nemo"),
                              trials={"names": ["v2"], "overrides": overrides}, benchmark={"threshold_clips": 10},
                              averaging={"mode": "never"})
    # The benchmarks through the workflow; the leaderboard from them by its command, as its rule
    # runs it (the rule would also wait for every export, which this test does not judge).
    run = snakemake(tmp_path, "results/base/benchmark.json", "results/v2/benchmark.json", "--cores", "2",
                    "--configfile", str(config))
    assert "rule prepare_quran_ayah_corpus:" not in run.stdout + run.stderr  # the copied data stage is up to date
    results = tmp_path / "results"
    subprocess.run([sys.executable, "-m", "quranft", "leaderboard",
                    "--benchmarks", *(f"{name}={results / name / 'benchmark.json'}" for name in ("base", "v2")),
                    "--markdown", str(results / "leaderboard.md"), "--json", str(results / "leaderboard.json"),
                    "--png", str(results / "leaderboard.png")],
                   check=True, capture_output=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(REPO / "src")))

    runs = {name: json.loads((results / name / "benchmark.json").read_text(encoding="utf-8")) for name in ("base", "v2")}
    primary = runs["base"]["matchers"]["primary"]
    rows = {name: {row["id"]: row for row in run["rows"]} for name, run in runs.items()}
    assert rows["base"].keys() == rows["v2"].keys() and len(rows["base"]) >= 80
    changed = [i for i in rows["base"] if rows["base"][i]["transcript"] != rows["v2"][i]["transcript"]]
    assert len(changed) > len(rows["base"]) // 2  # fine-tuning moved the model: most transcripts differ

    def correct(name, sample):
        return rows[name][sample]["matchers"][primary]["sequence_accuracy"] == 1.0

    recovered = sorted(i for i in rows["base"] if correct("v2", i) and not correct("base", i))
    regressed = sorted(i for i in rows["base"] if correct("base", i) and not correct("v2", i))
    # Twelve steps move a fair share of the verdicts both ways (11 and 11 on a 2-core EPYC; the exact
    # counts follow the CPU's rounding); the leaderboard's figures must follow from them exactly.
    assert len(recovered) >= 5 and len(regressed) >= 5
    board = json.loads((results / "leaderboard.json").read_text(encoding="utf-8"))
    versus = next(row for row in board["rows"] if row["model"] == "v2")["versus_base"]
    assert sorted(versus["recovered"]) == recovered and sorted(versus["regressed"]) == regressed
    # the paired figures follow from the discordant samples alone
    recitations = [i for i in rows["base"] if rows["base"][i]["expected"]]  # negatives are false accepts apart
    assert versus["deltas"]["sequence_accuracy"]["delta"] == pytest.approx(
        (len(recovered) - len(regressed)) / len(recitations))
    discordant = len(recovered) + len(regressed)
    assert versus["mcnemar_p"] == pytest.approx(binomtest(min(len(recovered), len(regressed)), discordant, 0.5).pvalue)
    markdown = (results / "leaderboard.md").read_text(encoding="utf-8")
    section = markdown.split(f"### v2: {len(regressed)} regressed, {len(recovered)} recovered")[1].split("\n### ")[0]
    regressed_table, recovered_table = section.split("Recovered (")
    # each table lists exactly its samples, one row each, with what both models predicted and heard
    for table, samples in ((regressed_table, regressed), (recovered_table, recovered)):
        listed = sorted(line.split(" | ")[0].lstrip("| ") for line in table.splitlines()
                        if line.startswith("| ") and not line.startswith(("| sample", "| ---")))
        assert listed == samples

    # Re-scoring the saved transcripts and log-probs gives exactly the benchmark's predictions.
    from quranft.evaluation.rescore import rescore

    for name in ("base", "v2"):
        for matcher in ("text", "ctc"):
            again = rescore(REPO / "demo" / "benchmark", results / name / "benchmark.json", matcher,
                            tmp_path / f"{name}-{matcher}.json", log_probs_path=results / name / "log_probs.npz",
                            tokenizer_from=results / name / "model.nemo")
            predicted = {row["id"]: row["matchers"][matcher].get("predicted") for row in again["rows"]}
            assert predicted == {i: row["matchers"][matcher].get("predicted") for i, row in rows[name].items()}
