"""Trial files: the seed's values, inheritance, clear errors, and what an edit re-plans."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import REPO, demo_config_file, planned_jobs, snakemake
from quranft.config import load_schema
from quranft.training.trials import (
    TRIAL_SCHEMA,
    TrialError,
    candidate_scores_file,
    load_trial,
    resolve_best,
    training_values,
)

TRIALS = REPO / "config" / "trials"


def test_the_launched_v1_block_wins():
    v1 = load_trial(TRIALS, "v1").values
    assert (v1["freeze_encoder_layers"], v1["max_steps"], v1["batch_size"], v1["grad_accum"]) == (10, 2000, 12, 2)
    assert (v1["lr"], v1["warmup_steps"], v1["ctc_only"], v1["freeze_rnnt_decoder"]) == (5e-5, 200, True, True)
    assert (v1["max_train_samples"], v1["max_retasy_samples"], v1["include_retasy"]) == (120000, 6000, True)


def test_v2_and_v3_carry_the_seed_values():
    v2 = load_trial(TRIALS, "v2").values
    assert (v2["batch_size"], v2["max_steps"], v2["lr"], v2["warmup_steps"], v2["freeze_encoder_layers"]) == \
        (32, 25000, 1e-4, 1000, 4)
    assert v2["val_interval"] == 500 and v2["ctc_only"] is True
    v3 = load_trial(TRIALS, "v3").values
    assert (v3["max_steps"], v3["lr"], v3["warmup_steps"], v3["freeze_encoder_layers"]) == (30000, 5e-5, 1500, 0)
    assert v3["freeze_rnnt_decoder"] is False and v3["ctc_only"] is False


def test_every_trial_says_why_it_exists_and_uses_only_schema_keys():
    keys = set(load_schema(TRIAL_SCHEMA)["properties"])
    for path in sorted(TRIALS.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert raw["trigger"] and "\n" not in raw["trigger"], path
        assert set(raw) <= keys, path


def test_v4_to_v6_extend_the_best_of_v1_to_v3_by_validation_wer():
    for name, own in (("v4", {"include_retasy": False}), ("v5", {"max_retasy_samples": 15000}),
                      ("v6", {"spec_freq_masks": 4, "spec_time_masks": 15, "early_stopping_patience": 5})):
        trial = load_trial(TRIALS, name)
        assert trial.values is None and trial.best_of == {"trials": ["v1", "v2", "v3"], "metric": "validation_wer"}
        assert candidate_scores_file(trial.best_of) == "training_metadata.json"  # never the benchmark
        raw = yaml.safe_load((TRIALS / f"{name}.yaml").read_text(encoding="utf-8"))
        assert {k: raw[k] for k in own} == own


def test_extends_best_without_a_metric_takes_the_schema_default(tmp_path):
    trials = write(write(tmp_path, "a"), "b", extends_best={"trials": ["a"]})
    assert load_trial(trials, "b").best_of == {"trials": ["a"], "metric": "validation_wer"}


def trained(name: str, best_wer: float | None, validation_sha256: str = "same", monitor: str = "val_wer_ctc") -> dict:
    """The parts of a training_metadata.json that extends_best reads; each trial writes its own
    copy of the validation manifest."""
    return {"training": {"monitor": monitor, "best_score": best_wer},
            "data": {"manifests": {"validation": {"path": f"results/{name}/data/validation.jsonl",
                                                  "sha256": validation_sha256}}}}


def candidates(**values) -> dict:
    return {name: trained(name, *value) if isinstance(value, tuple) else trained(name, value)
            for name, value in values.items()}


def test_extends_best_by_validation_wer_takes_the_lowest_and_records_the_choice(tmp_path):
    out, choice_file = tmp_path / "results" / "v4" / "trial.yaml", tmp_path / "results" / "v4" / "extends_best.json"
    choice = resolve_best(TRIALS, "v4", None, candidates(v1=0.30, v2=0.20, v3=0.25), out, choice_file)
    assert choice == {"trial": "v4", "candidates": ["v1", "v2", "v3"], "metric": "validation_wer",
                      "selected_on": "validation", "scores": {"v1": 0.30, "v2": 0.20, "v3": 0.25}, "chosen": "v2",
                      "monitor": "val_wer_ctc", "validation_manifest_sha256": "same"}
    assert json.loads(choice_file.read_text(encoding="utf-8")) == choice
    trial = load_trial(TRIALS, "v4", resolved_dir=tmp_path / "results")
    v2 = load_trial(TRIALS, "v2").values
    assert trial.values["include_retasy"] is False  # v4's own key
    assert trial.values["batch_size"] == v2["batch_size"] and trial.values["lr"] == v2["lr"]  # v2's
    assert trial.values["trigger"].startswith("Model performs well on clean EveryAyah")
    assert out.read_text(encoding="utf-8").startswith(
        "# v4 resolved: extends_best of ['v1', 'v2', 'v3'] by validation_wer on the validation data")


@pytest.mark.parametrize("results, message", [
    (candidates(v1=0.3, v2=(0.2, "other"), v3=0.2),
     r"v4\.yaml: key 'extends_best' compares v1, v2, v3, but the validation manifests they were validated on "
     r"differ \(v1: results/v1/data/validation\.jsonl \(sha256 same\); v2: results/v2/data/validation\.jsonl "
     r"\(sha256 other\); v3: "),
    (candidates(v1=0.3, v2=0.2, v3=(0.2, "same", "val_wer")),
     r"the validation WERs they monitor differ \(v1: val_wer_ctc; v2: val_wer_ctc; v3: val_wer\)"),
    (candidates(v1=0.3, v2=None, v3=0.2), r"ranks v2 by its validation WER, but its training_metadata\.json records none"),
    (candidates(v1=0.3, v2=0.2), r"names v3, which has no training_metadata\.json"),
])
def test_candidates_that_cannot_be_ranked_by_validation_wer_are_refused(tmp_path, results, message):
    with pytest.raises(TrialError, match=message):
        resolve_best(TRIALS, "v4", None, results, tmp_path / "trial.yaml", tmp_path / "extends_best.json")
    assert not (tmp_path / "trial.yaml").exists()


def benchmark(seqacc: float, corpus: str = "c0rpus") -> dict:
    return {"matchers": {"primary": "ctc"}, "summary": {"ctc": {"sequence_accuracy": seqacc}},
            "transcripts": {"wer": 1 - seqacc}, "corpus": {"sha256": corpus}}


def test_extends_best_by_a_benchmark_metric_records_the_corpus_it_was_chosen_on(tmp_path):
    trials = tmp_path / "trials"
    shutil.copytree(TRIALS, trials)
    v4 = trials / "v4.yaml"
    v4.write_text(v4.read_text(encoding="utf-8").replace("metric: validation_wer", "metric: sequence_accuracy"),
                  encoding="utf-8")
    assert candidate_scores_file(load_trial(trials, "v4").best_of) == "benchmark.json"
    out, choice_file = tmp_path / "v4" / "trial.yaml", tmp_path / "v4" / "extends_best.json"
    choice = resolve_best(trials, "v4", None, {"v1": benchmark(0.8), "v2": benchmark(0.9), "v3": benchmark(0.9)},
                          out, choice_file)
    assert choice["chosen"] == "v2"  # a tie goes to the earlier trial
    assert choice["selected_on"] == "benchmark" and choice["corpus_sha256"] == "c0rpus"
    with pytest.raises(TrialError, match=r"the benchmark corpora \(corpus\.sha256\) differ \(v1: c0rpus; v2: other"):
        resolve_best(trials, "v4", None, {"v1": benchmark(0.8), "v2": benchmark(0.9, "other"),
                                          "v3": benchmark(0.9)}, out, choice_file)


def write(directory: Path, name: str, **values) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.yaml").write_text(yaml.safe_dump({"trigger": "test", **values}), encoding="utf-8")
    return directory


@pytest.mark.parametrize("values, message", [
    ({"max_steps": -5}, r"bad\.yaml: key 'max_steps' must be >= 1, got -5"),
    ({"max_stepz": 5}, r"bad\.yaml: key 'max_stepz' is unknown; expected one of: "),
    ({"lr": "fast"}, r"bad\.yaml: key 'lr' must be of type number, got str 'fast'"),
    ({"average_top_k": 6, "save_top_k": 5}, r"bad\.yaml: key 'average_top_k' \(6\) must not exceed 'save_top_k'"),
    ({"extends": "bad"}, r"bad\.yaml: key 'extends' makes a cycle"),
    ({"extends": "nothing"}, r"nothing\.yaml: trial file not found"),
    ({"batching": "duration"}, r"bad\.yaml: key 'batch_duration' is missing: batching duration needs"),
    ({"batch_duration": 600}, r"bad\.yaml: key 'batch_duration' \(600\) is set, but 'batching' is fixed"),
    ({"batching": "tokens"}, r"bad\.yaml: key 'batching' must be one of \['fixed', 'duration'\], got 'tokens'"),
    ({"batching": "duration", "batch_duration": 0}, r"bad\.yaml: key 'batch_duration' must be > 0, got 0"),
    ({"num_buckets": 0}, r"bad\.yaml: key 'num_buckets' must be >= 1, got 0"),
])
def test_a_bad_trial_value_names_the_file_and_key(tmp_path, values, message):
    with pytest.raises(TrialError, match=message):
        load_trial(write(tmp_path, "bad", **values), "bad")


def test_duration_batching_keys_and_their_defaults_and_what_they_change(tmp_path):
    trials = write(tmp_path, "d", batching="duration", batch_duration=600.0)
    write(trials, "f", extends="d", batching="fixed", batch_duration=None)
    duration, fixed = load_trial(trials, "d").values, load_trial(trials, "f").values
    assert (duration["num_buckets"], duration["bucket_buffer_size"], duration["quadratic_duration"]) == \
        (30, 10000, None)  # NeMo's defaults
    assert load_trial(TRIALS, "v1").values["batching"] == "fixed"  # the seed's batches stay the default
    # Bucketing settings change a duration trial's training, not a fixed trial's.
    assert training_values({**duration, "num_buckets": 8}) != training_values(duration)
    assert training_values({**fixed, "num_buckets": 8}) == training_values(fixed)
    assert "batch_duration" not in training_values(fixed)


@pytest.mark.slow
def test_a_bad_trial_stops_the_dry_run_with_its_message(tmp_path):
    trials = tmp_path / "trials"
    shutil.copytree(TRIALS, trials)
    (trials / "v2.yaml").write_text((trials / "v2.yaml").read_text() + "max_steps: -3\n", encoding="utf-8")
    config = demo_config_file(tmp_path, trials={"dir": str(trials)})
    result = snakemake(tmp_path, "-n", "--configfile", str(config), check=False)
    assert result.returncode != 0
    assert f"{trials / 'v2.yaml'}: key 'max_steps' must be >= 1, got -3" in result.stdout + result.stderr


@pytest.mark.slow
def test_editing_one_trial_file_replans_that_trial_only(finished):
    """Every output up to date (a copy of the finished demo, with its own trial files), then one
    trial file edited: the dry run plans that trial's training, averaging and benchmark, the
    trials that depend on it, and the leaderboard; nothing else (not v1, not the data stage, not
    the base model)."""
    workdir, config = finished
    trials = workdir / "trials"
    v2 = trials / "v2.yaml"
    v2.write_text(v2.read_text(encoding="utf-8").replace("lr: 1.0e-4", "lr: 2.0e-4"), encoding="utf-8")
    result = snakemake(workdir, "-n", "--configfile", str(config))
    jobs = planned_jobs(result.stdout)
    # v2 itself, v3 (extends v2), v4 to v6 (their parent is the best of v1 to v3), the trials' joint
    # validation plot, their exports, the leaderboard, the model to ship and every model's card
    assert jobs == {"train_trial": 5, "average_checkpoints": 5, "benchmark_model": 5, "resolve_trial": 3,
                    "export_model": 5, "benchmark_export": 5, "benchmark_longform": 5, "browser_check": 1,
                    "validation_curves": 1, "leaderboard": 1,
                    "best_model": 1, "model_card": 7, "all": 1}
    assert "output: results/v2/training_metadata.json" in result.stdout
    assert "output: results/v1/training_metadata.json" not in result.stdout
    assert "output: results/base/model.nemo" not in result.stdout
    v1 = trials / "v1.yaml"
    v1.touch()
    jobs = planned_jobs(snakemake(workdir, "-n", "--configfile", str(config)).stdout)
    # v1 is extended by v2, and v2 by v3: all retrain, as do those extending their best
    assert jobs["train_trial"] == 6


@pytest.mark.slow
def test_the_workflow_resolves_v4_to_v6_from_the_candidates_validation_wer(finished):
    """A real run of resolve_trial (on the host, as under Slurm) once V1 to V3 have trained: each
    of V4 to V6 extends the candidate with the lowest validation WER, and nothing else runs."""
    workdir, config = finished
    for name, wer in {"v1": 0.30, "v2": 0.20, "v3": 0.25}.items():
        (workdir / "results" / name / "training_metadata.json").write_text(json.dumps(trained(name, wer)),
                                                                           encoding="utf-8")
    targets = [f"results/{name}/trial.yaml" for name in ("v4", "v5", "v6")]
    result = snakemake(workdir, *targets, "-c1", "--configfile", str(config))
    assert planned_jobs(result.stdout + result.stderr) == {"resolve_trial": 3}
    for name in ("v4", "v5", "v6"):
        choice = json.loads((workdir / "results" / name / "extends_best.json").read_text(encoding="utf-8"))
        assert choice["chosen"] == "v2" and choice["scores"] == {"v1": 0.30, "v2": 0.20, "v3": 0.25}
        assert (workdir / "results" / name / "trial.yaml").read_text(encoding="utf-8").startswith(
            f"# {name} resolved: extends_best of ['v1', 'v2', 'v3'] by validation_wer on the validation data")


@pytest.mark.slow
def test_v4_to_v6_are_chosen_from_the_candidates_training_never_from_the_benchmark(tmp_path):
    """The dry run's resolve_trial jobs read V1-V3's training metadata and no benchmark, and the
    leaderboard reads how each was chosen."""
    result = snakemake(tmp_path, "-n", "--configfile", str(demo_config_file(tmp_path)))
    blocks = result.stdout.split("\n\n")
    inputs = {block.split("output: results/")[1].split("/")[0]: block.split("input: ")[1].split("\n")[0]
              for block in blocks if "rule resolve_trial:" in block}
    assert set(inputs) == {"v4", "v5", "v6"}
    for files in inputs.values():
        assert all(f"results/{name}/training_metadata.json" in files for name in ("v1", "v2", "v3"))
        assert "benchmark" not in files
    leaderboard = next(block for block in blocks if "rule leaderboard:" in block)
    assert all(f"results/{name}/extends_best.json" in leaderboard for name in ("v4", "v5", "v6"))
