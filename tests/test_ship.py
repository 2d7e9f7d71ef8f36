"""What the workflow ships: the model to ship (best.json), every model's card, and the trials'
validation WER on one plot."""

from __future__ import annotations

import json

import pytest
import yaml

from quranft.cli import main
from test_leaderboard import ALL_RIGHT, BASE_RIGHT, benchmark, hybrid

HALF = {"s0", "s1", "s2", "s6", "s7"}


def write_board(tmp_path, models: dict[str, set[str]], heads: bool = False) -> tuple[str, list[str]]:
    """The leaderboard of `models` ({name: samples right}) through the CLI, as the workflow writes
    it (with `heads`, of hybrids whose RNNT head gets the same samples right); returns its JSON
    file and each model's NAME=.nemo argument."""
    files = []
    for name, right in models.items():
        path = tmp_path / "results" / name / "benchmark.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(hybrid(name, right, right) if heads else benchmark(name, right)), encoding="utf-8")
        files.append(f"{name}={path}")
    out = tmp_path / "results" / "leaderboard"
    assert main(["leaderboard", "--benchmarks", *files, "--markdown", f"{out}.md", "--json", f"{out}.json",
                 "--png", f"{out}.png"]) == 0
    return f"{out}.json", [f"{name}=results/{name}/model.nemo" for name in models]


def best(tmp_path, models: dict[str, set[str]], *formats: str) -> dict:
    board, nemo = write_board(tmp_path, models)
    out = tmp_path / "results" / "best.json"
    assert main(["best-model", "--leaderboard", board, "--models", *nemo, "--export-formats", *formats,
                 "--output", str(out)]) == 0
    return json.loads(out.read_text(encoding="utf-8"))


def test_best_json_names_the_trial_that_beats_the_base_significantly_with_its_files(tmp_path):
    # v1 recovers all 8 samples (p = 2 / 2**8, Holm-doubled to 0.0156); v2 recovers 5 (p = 0.0625)
    chosen = best(tmp_path, {"base": set(), "v1": ALL_RIGHT, "v2": HALF}, "fp32", "int8")
    assert chosen["model"] == "v1" and chosen["beat_the_base"] == ["v1"]
    assert chosen["versus_base"] == {"sequence_accuracy_delta": 1.0, "recovered": 8, "regressed": 0,
                                     "mcnemar_p": pytest.approx(2 / 2 ** 8), "mcnemar_p_holm": pytest.approx(4 / 2 ** 8)}
    assert chosen["files"] == {"nemo": "results/v1/model.nemo", "model_card": "results/v1/MODEL_CARD.md",
                               "exports": {"fp32": "results/v1/export/model.onnx",
                                           "int8": "results/v1/export/model.int8.onnx"}}
    assert chosen["reason"] == ("v1 beat the base significantly (SeqAcc 100.0% against the base's 0.0%, +100.0 "
                                "points; 8 recovered, 0 regressed; Holm p = 0.0156 < 0.05), the only trial that did")
    assert (chosen["sequence_accuracy"], chosen["base_sequence_accuracy"], chosen["matcher"]) == (1.0, 0.0, "ctc")


def test_best_json_keeps_the_base_when_no_trial_beats_it_significantly(tmp_path):
    # Two trials recovering the same six samples: p 0.03125 each, Holm 0.0625 each, neither significant.
    chosen = best(tmp_path, {"base": BASE_RIGHT, "v1": ALL_RIGHT, "v2": ALL_RIGHT}, "int4")
    assert chosen["model"] == "base" and chosen["beat_the_base"] == [] and chosen["versus_base"] is None
    assert chosen["reason"] == ("no trial beat the base significantly (the best, v1: SeqAcc 100.0% against the "
                                "base's 25.0%, +75.0 points; 6 recovered, 0 regressed; Holm p = 0.0625, not below "
                                "0.05): keep the pretrained model")
    assert chosen["files"]["nemo"] == "results/base/model.nemo"
    assert chosen["files"]["exports"] == {"int4": "results/base/export/model.int4.onnx"}


def test_a_trial_significantly_worse_than_the_base_is_never_shipped(tmp_path):
    chosen = best(tmp_path, {"base": ALL_RIGHT, "v1": BASE_RIGHT})  # 6 regressed: p 0.03125, significant
    assert chosen["model"] == "base" and chosen["files"]["exports"] == {}
    assert "keep the pretrained model" in chosen["reason"]


def test_of_the_trials_that_beat_the_base_the_best_ranked_is_named_and_a_tie_said(tmp_path):
    from quranft.evaluation.best import choose
    from quranft.evaluation.leaderboard import build

    board = build({"base": benchmark("base", set()), "v2": benchmark("v2", ALL_RIGHT),
                   "v1": benchmark("v1", ALL_RIGHT), "v3": benchmark("v3", {"s0", "s1", "s2", "s3", "s4", "s5",
                                                                            "s6"})})
    chosen = choose(board)
    assert chosen["model"] == "v1" and chosen["beat_the_base"] == ["v1", "v2", "v3"]
    assert "the best of the 3 trials that did (v1, v2, v3); v2 scored the same SeqAcc, recall and precision, " \
           "and the first by name is named" in chosen["reason"]


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


def card(tmp_path, model: str, settings: dict, *trial: str, heads: bool = False) -> tuple[dict, str]:
    board, _ = write_board(tmp_path, {"base": BASE_RIGHT, "v1": ALL_RIGHT}, heads)
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


def test_the_card_of_a_trial_that_extends_the_best_names_its_parent_and_how_it_was_chosen(tmp_path):
    board, _ = write_board(tmp_path, {"base": BASE_RIGHT, "v1": ALL_RIGHT})
    choice = tmp_path / "extends_best.json"
    choice.write_text(json.dumps({"trial": "v1", "candidates": ["a", "b", "c"], "metric": "validation_wer",
                                  "selected_on": "validation", "chosen": "b"}), encoding="utf-8")
    out = tmp_path / "results" / "leaderboard_chosen"
    benchmarks = [f"{name}={tmp_path / 'results' / name / 'benchmark.json'}" for name in ("base", "v1")]
    assert main(["leaderboard", "--benchmarks", *benchmarks, "--choices", f"v1={choice}", "--markdown", f"{out}.md",
                 "--json", f"{out}.json", "--png", f"{out}.png"]) == 0
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps(HUB_SETTINGS), encoding="utf-8")
    training, averaging = trial_files(tmp_path)
    card_file = tmp_path / "MODEL_CARD.md"
    assert main(["model-card", "--settings", str(settings), "--leaderboard", f"{out}.json", "--model", "v1",
                 "--training-metadata", training, "--averaging", averaging, "--output", str(card_file)]) == 0
    assert "It extends b, the best of a, b, c by validation_wer (on the validation data)." in \
        card_file.read_text(encoding="utf-8")


def test_a_hybrids_card_also_gives_its_rnnt_heads_figures_against_the_bases_rnnt_head(tmp_path):
    training, averaging = trial_files(tmp_path)
    meta, body = card(tmp_path, "v1", HUB_SETTINGS, "--training-metadata", training, "--averaging", averaging,
                      heads=True)
    [result] = meta["model-index"][0]["results"]
    metrics = {m["name"]: m["value"] for m in result["metrics"]}
    assert metrics["SeqAcc (ctc matcher)"] == 100.0 and metrics["transcript WER (CTC greedy, without diacritics)"] == 50.0
    assert metrics["SeqAcc (RNNT head, text matcher)"] == 100.0 and metrics["verse recall (RNNT head, text matcher)"] == 100.0
    assert metrics["transcript WER (RNNT greedy, without diacritics)"] == 40.0
    heads = body.split("The RNNT head on the same clips (greedy, `text` matcher; every figure above is the CTC head's):")[1]
    assert "| v1 | 100.0% | 100.0% | 100.0% (100.0%–100.0%) | 40.0% | 10.0% |" in heads
    assert "| base | 25.0% |" in heads
    assert ("Against the base: +75.0 points of SeqAcc, 6 samples recovered and 0 regressed; exact McNemar p = "
            "0.0312, Holm p = 0.0312 across the 1 RNNT heads compared with the base's: significant at 0.05.") in heads
    _, plain = card(tmp_path / "plain", "v1", HUB_SETTINGS, "--training-metadata", training, "--averaging", averaging)
    assert "RNNT head on" not in plain
    assert body.split("The RNNT head on")[0] == plain.split("\n## How to use each file")[0] + "\n"


def test_the_base_models_card_with_a_local_base_names_no_hub_model_and_no_training(tmp_path):
    local = tmp_path / "base_model.nemo"
    local.write_bytes(b"")
    settings = {**HUB_SETTINGS, "base_model": str(local), "base_model_license": "apache-2.0"}
    meta, body = card(tmp_path, "base", settings)
    assert meta["license"] == "apache-2.0" and "base_model" not in meta and "datasets" not in meta
    assert meta["model-index"][0]["name"] == "base"
    assert "## Training data" not in body and "Against the base" not in body
    assert "It ranks 2 of 2 on the workflow's leaderboard" in body


# Two trials' metrics.csv as Lightning's CSV logger wrote them in the demo (V1 CTC-only; V3 hybrid,
# which logs no validation loss), and one trial that has not validated yet.
CTC_ONLY = """epoch,global_step,learning_rate,step,train_ctc_loss,train_loss,val_loss,val_wer,val_wer_ctc
0,9.0,0.0009090909152291715,9,116.78665161132812,116.78665161132812,,,
0,19.0,0.0009237207123078406,19,177.31422424316406,177.31422424316406,,,
0,,,19,,,86.0504379272461,0.9777777791023254,0.9777777791023254
1,39.0,0.00038814195431768894,39,71.1373291015625,71.1373291015625,,,
1,,,39,,,57.56862258911133,0.9166666865348816,0.9166666865348816
1,59.0,2.0966903321095742e-05,59,60.47593307495117,60.47593307495117,,,
1,,,59,,,52.695674896240234,0.8611111044883728,0.8611111044883728
"""
HYBRID = """epoch,global_step,learning_rate,step,train_ctc_loss,train_loss,train_rnnt_loss,training_batch_wer,\
training_batch_wer_ctc,val_wer,val_wer_ctc
0,9.0,0.0009090909152291715,9,116.31620025634766,159.7100830078125,178.3074493408203,1.0,1.0,,
0,,,19,,,,,,0.99,0.95
1,,,39,,,,,,0.97,0.90
"""
UNVALIDATED = """epoch,global_step,learning_rate,step,train_loss
0,9.0,0.0009,9,116.8
"""


def test_every_trials_validation_wer_is_drawn_on_one_plot_from_their_metrics_csvs(tmp_path, caplog):
    files = {}
    for name, text in (("v1", CTC_ONLY), ("v3", HYBRID), ("v6", UNVALIDATED)):
        files[name] = tmp_path / name / "metrics.csv"
        files[name].parent.mkdir()
        files[name].write_text(text, encoding="utf-8")
    out = tmp_path / "validation_wer.png"
    assert main(["validation-curves", "--metrics", *(f"{n}={p}" for n, p in files.items()),
                 f"v9={tmp_path / 'missing.csv'}", "--output", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from quranft.training.curves import plot_validation_wer

    drawn = plot_validation_wer(files, tmp_path / "again.png")
    assert drawn == {"v1": [(19, pytest.approx(0.9778, abs=1e-4)), (39, pytest.approx(0.9167, abs=1e-4)),
                            (59, pytest.approx(0.8611, abs=1e-4))],
                     "v3": [(19, 0.95), (39, 0.90)]}  # the CTC head's WER, which ranks the checkpoints
    assert "v6: no validation WER" in caplog.text
