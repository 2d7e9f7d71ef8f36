"""Data caps: the data stage prepares the most any trial asks for; each trial blends its own cap and
records what it asked for against what was available."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from quranft.training.trials import data_stage_caps, load_trial

TRIALS = REPO / "config" / "trials"
NO_CEILING = {"max_train_samples": None, "max_val_samples": None, "max_retasy_samples": None}


def trials_of(directory: Path, names, overrides=None) -> dict:
    return {name: load_trial(directory, name, overrides) for name in names}


def write(directory: Path, name: str, **values) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.yaml").write_text(yaml.safe_dump({"trigger": "test", **values}), encoding="utf-8")
    return directory


def test_the_real_trials_ask_for_v5s_retasy_rows_through_its_own_file():
    trials = trials_of(TRIALS, ["v1", "v2", "v3", "v4", "v5", "v6"])
    assert trials["v5"].values is None  # extends_best: unresolved at parse time
    assert data_stage_caps(NO_CEILING, trials, TRIALS) == {
        "max_train_samples": 120000, "max_val_samples": 8000, "max_retasy_samples": 15000}


def test_an_extends_best_trial_counts_with_every_candidate_its_own_values_first(tmp_path):
    directory = write(tmp_path, "small", max_retasy_samples=10, max_train_samples=100)
    write(directory, "large", max_retasy_samples=50, max_train_samples=None)
    write(directory, "best", extends_best={"trials": ["small", "large"]})
    write(directory, "own", extends_best={"trials": ["small", "large"]}, max_retasy_samples=5)
    # "best" may extend "large", which is not trained itself here: its caps still count
    caps = data_stage_caps(NO_CEILING, trials_of(directory, ["small", "best"]), directory)
    assert (caps["max_retasy_samples"], caps["max_train_samples"]) == (50, None)
    # "own" asks 5 RetaSy rows whichever it extends; "small" asks 10
    assert data_stage_caps(NO_CEILING, trials_of(directory, ["small", "own"]), directory)["max_retasy_samples"] == 10
    # overrides come after every trial file
    overrides = {"max_retasy_samples": 7}
    assert data_stage_caps(NO_CEILING, trials_of(directory, ["small", "own"], overrides), directory,
                           overrides)["max_retasy_samples"] == 7


def test_trials_without_retasy_ask_nothing_of_it_and_no_trial_leaves_the_config_value(tmp_path):
    directory = write(tmp_path, "quran_only", include_retasy=False, max_retasy_samples=99999)
    write(directory, "blended", max_retasy_samples=10)
    assert data_stage_caps(NO_CEILING, trials_of(directory, ["quran_only", "blended"]),
                           directory)["max_retasy_samples"] == 10
    ceilings = {**NO_CEILING, "max_retasy_samples": 30}
    assert data_stage_caps(ceilings, trials_of(directory, ["quran_only"]), directory)["max_retasy_samples"] == 30
    assert data_stage_caps(ceilings, {}, directory) == ceilings


def test_a_config_ceiling_holds_the_caps_down_and_names_the_trials_asking_for_more(caplog):
    trials = trials_of(TRIALS, ["v1", "v4", "v5"])
    with caplog.at_level(logging.WARNING, logger="quranft"):
        caps = data_stage_caps({**NO_CEILING, "max_retasy_samples": 5999}, trials, TRIALS)
    assert caps["max_retasy_samples"] == 5999
    assert ("config key 'data.max_retasy_samples' (5999) is below what trial(s) v1 (6000), v5 (15000) ask for"
            in caplog.text)


@pytest.mark.slow
def test_the_demo_data_stage_prepares_every_usable_retasy_row_for_v5(demo_data_stage):
    """config/demo.yaml sets no ceilings: V5's 15000 RetaSy rows make the data stage keep them all."""
    report = json.loads((demo_data_stage / "results/data/report.json").read_text(encoding="utf-8"))
    retasy = report["sources"]["retasy"]
    assert retasy["settings"]["caps"] == {"train": 15000}
    figures = retasy["splits"]["train"]
    assert figures["dropped"]["over_cap"] == 0 and figures["kept"] == figures["rows_total"] - figures["dropped_total"]
    # the real config's label choice on the demo's RetaSy-like labels
    labels = figures["labels"]
    assert labels["correct"]["kept"] > 0 and labels["(unlabelled)"]["kept"] > 0
    for dropped in ("in_correct", "not_related_quran", "not_match_aya", "multiple_aya", "in_complete"):
        assert labels[dropped]["kept"] == 0 and labels[dropped]["dropped"]["bad_label"] > 0, dropped
    assert sum(f["kept"] for f in labels.values()) == figures["kept"]


@pytest.mark.slow
def test_a_trial_takes_its_own_cap_and_records_what_it_asked_for_against_what_was_there(demo_data_stage, caplog):
    from quranft.data.blend import blend_rows

    data = demo_data_stage / "results" / "data"
    available = json.loads((data / "retasy" / "report.json").read_text(encoding="utf-8"))["splits"]["train"]["kept"]
    sources = {name: data / name for name in ("quran_ayah_corpus", "retasy")}
    rows, report = blend_rows(sources, True, {"max_train_samples": 10, "max_val_samples": 5,
                                              "max_retasy_samples": 4})
    assert len(rows["train"]) == 14 and report["caps"]["max_retasy_samples"]["used"] == 4
    with caplog.at_level(logging.WARNING, logger="quranft"):
        rows, report = blend_rows(sources, True, {"max_train_samples": 10, "max_val_samples": 5,
                                                  "max_retasy_samples": 15000})
    assert report["caps"]["max_retasy_samples"] == {"asked": 15000, "available": available, "used": available,
                                                    "data_stage_cap": 15000, "source_exhausted": True}
    assert len(rows["train"]) == 10 + available
    assert f"max_retasy_samples asks for 15000 rows, but {available} are available: that is every usable row" \
        in caplog.text
