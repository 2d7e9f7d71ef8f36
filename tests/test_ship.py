"""What the workflow ships: every model's card."""

from __future__ import annotations

import json

import yaml

from quranft.cli import main
from test_leaderboard import ALL_RIGHT, BASE_RIGHT, benchmark


def write_board(tmp_path, models: dict[str, set[str]]) -> tuple[str, list[str]]:
    """The leaderboard of `models` ({name: samples right}) through the CLI, as the workflow writes
    it; returns its JSON file and each model's NAME=.nemo argument."""
    files = []
    for name, right in models.items():
        path = tmp_path / "results" / name / "benchmark.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(benchmark(name, right)), encoding="utf-8")
        files.append(f"{name}={path}")
    out = tmp_path / "results" / "leaderboard"
    assert main(["leaderboard", "--benchmarks", *files, "--markdown", f"{out}.md", "--json", f"{out}.json",
                 "--png", f"{out}.png"]) == 0
    return f"{out}.json", [f"{name}=results/{name}/model.nemo" for name in models]


def trial_files(tmp_path) -> tuple[str, str]:
    """A trial's training_metadata.json and averaging.json, as training and averaging write them
    (the parts the card reads)."""
    manifests = {"train": {"rows": 233, "hours": 0.2813,
                           "sources": {"quran_ayah_corpus": {"rows": 209, "available": 209, "cap": 120000, "hours": 0.25},
                                       "retasy": {"rows": 24, "available": 24, "cap": 6000, "hours": 0.03}}},
                 "validation": {"rows": 42, "hours": 0.0516,
                                "sources": {"quran_ayah_corpus": {"rows": 42, "available": 42, "cap": 8000,
                                                                  "hours": 0.0516}}}}
    metadata = {"trial": "v1", "trial_files": ["config/trials/v1.yaml"],
                "trial_values": {"trigger": "The first fine-tune.", "freeze_encoder_layers": 10, "ctc_only": True,
                                 "lr": 5e-05, "max_steps": 60},
                "data": {"blend": {"include_retasy": True, "manifests": manifests}},
                "device": {"device_name": "x86_64", "precision": "32-true"},
                "training": {"global_step": 60, "stopped_early": False, "monitor": "val_wer_ctc",
                             "best_score": 0.8611}}
    averaging = {"members": [{}, {}, {}], "choice": "best_single",
                 "reason": "average WER 0.8889 > best single 0.8611"}
    paths = tmp_path / "v1.training.json", tmp_path / "v1.averaging.json"
    for path, content in zip(paths, (metadata, averaging)):
        path.write_text(json.dumps(content), encoding="utf-8")
    return str(paths[0]), str(paths[1])


def card(tmp_path, model: str, settings: dict, *trial: str) -> tuple[dict, str]:
    board, _ = write_board(tmp_path, {"base": BASE_RIGHT, "v1": ALL_RIGHT})
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(json.dumps(settings), encoding="utf-8")
    out = tmp_path / "results" / model / "MODEL_CARD.md"
    assert main(["model-card", "--settings", str(settings_file), "--leaderboard", board, "--model", model, *trial,
                 "--output", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    header, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(header), body


HUB_SETTINGS = {"base_model": "nvidia/stt_ar_fastconformer_hybrid_large_pcd_v1.0", "base_model_license": "cc-by-4.0",
                "sources": {"quran_ayah_corpus": {"dataset": "rabah2026/Quran-Ayah-Corpus", "format": "auto"},
                            "retasy": {"dataset": "RetaSy/quranic_audio_dataset", "format": "auto"}}}


def test_a_trials_model_card_has_front_matter_that_parses_as_yaml_with_the_benchmarks_figures(tmp_path):
    training, averaging = trial_files(tmp_path)
    meta, body = card(tmp_path, "v1", HUB_SETTINGS, "--training-metadata", training, "--averaging", averaging)
    assert meta["language"] == ["ar"] and meta["license"] == "cc-by-4.0" and meta["library_name"] == "nemo"
    assert meta["base_model"] == "nvidia/stt_ar_fastconformer_hybrid_large_pcd_v1.0"
    assert meta["datasets"] == ["rabah2026/Quran-Ayah-Corpus", "RetaSy/quranic_audio_dataset"]
    [index] = meta["model-index"]
    assert index["name"] == "v1"
    [result] = index["results"]
    assert result["task"] == {"type": "automatic-speech-recognition", "name": "Quran verse identification"}
    assert result["dataset"]["type"] == "corpus"
    assert {(m["type"], m["value"]) for m in result["metrics"]} == {
        ("accuracy", 100.0), ("recall", 100.0), ("precision", 100.0), ("wer", 50.0), ("cer", 20.0)}
    assert "# v1: nvidia/stt_ar_fastconformer_hybrid_large_pcd_v1.0 fine-tuned on Quran recitation" in body
    assert ("| train | 233 | 0.2813 | quran_ayah_corpus (`rabah2026/Quran-Ayah-Corpus`): 209 rows; retasy "
            "(`RetaSy/quranic_audio_dataset`): 24 rows |") in body
    assert "Trial `v1` (files: `config/trials/v1.yaml`): The first fine-tune." in body
    assert "| `freeze_encoder_layers` | 10 |" in body and "| `trigger` |" not in body
    assert "`model.nemo` is the best single one of its top 3 checkpoints (average WER 0.8889 > best single" in body
    assert "Against the base: +75.0 points of SeqAcc, 6 samples recovered and 0 regressed" in body
    assert "| multi (2) | 100.0% | 50.0% |" in body
    assert "License: `cc-by-4.0`, inherited from the base model" in body
    assert "Tanzil Quran Text (tanzil.net), CC BY 3.0" in body


def test_the_base_models_card_with_a_local_base_names_no_hub_model_and_no_training(tmp_path):
    local = tmp_path / "base_model.nemo"
    local.write_bytes(b"")
    settings = {**HUB_SETTINGS, "base_model": str(local), "base_model_license": "apache-2.0"}
    meta, body = card(tmp_path, "base", settings)
    assert meta["license"] == "apache-2.0" and "base_model" not in meta and "datasets" not in meta
    assert meta["model-index"][0]["name"] == "base"
    assert "## Training data" not in body and "Against the base" not in body
    assert "It ranks 2 of 2 on the workflow's leaderboard" in body
