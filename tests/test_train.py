"""Training on tiny real NeMo models on the CPU: freezing, CTC-only, DDP, bad trial values (killed and
resumed runs: tests/test_train_resume.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO
from quranft.training.trials import load_trial

pytestmark = pytest.mark.slow

TINY_TRIAL = {
    "trigger": "a test",
    "batch_size": 4,
    "grad_accum": 1,
    "max_steps": 6,
    "lr": 1.0e-3,
    "warmup_steps": 1,
    "val_interval": 3,
    "freeze_encoder_layers": 2,
    "freeze_rnnt_decoder": True,
    "ctc_only": True,
    "max_train_samples": 24,
    "max_val_samples": 8,
    "max_retasy_samples": 4,
    "save_top_k": 2,
    "average_top_k": 2,
    "text_option": "map_missing",
}


# Demo clips are 1.5 to 12 s: batches of one to about eight clips.
DURATION_BATCHING = {"batching": "duration", "batch_duration": 16.0, "num_buckets": 4}


def write_trial(directory: Path, name: str = "t", **values) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.yaml").write_text(yaml.safe_dump({**TINY_TRIAL, **values}), encoding="utf-8")
    return directory


def sources(workdir: Path) -> dict[str, Path]:
    return {name: workdir / "results" / "data" / name for name in ("quran_ayah_corpus", "retasy")}


def state(model) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def test_frozen_layers_and_their_batchnorm_statistics_do_not_move(tmp_path, tiny_base, demo_data_stage):
    from quranft.models import nemo_models
    from quranft.training.train import train_trial

    trial = load_trial(write_trial(tmp_path / "trials", lr_scale=3.0), "t")
    before = state(nemo_models.restore(tiny_base))
    metadata = train_trial(trial, tiny_base, sources(demo_data_stage), tmp_path / "out")
    assert metadata["training"]["global_step"] == 6
    last = torch.load(tmp_path / "out" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    after = last["state_dict"]
    assert last["optimizer_states"][0]["param_groups"][0]["initial_lr"] == pytest.approx(3.0e-3)  # lr x lr_scale
    frozen_prefixes = ("preprocessor.", "encoder.pre_encode.", "encoder.layers.0.", "encoder.layers.1.",
                       "decoder.", "joint.")
    frozen = [k for k in before if k.startswith(frozen_prefixes)]
    assert any("running_mean" in k for k in frozen) and any("num_batches_tracked" in k for k in frozen)
    for key in frozen:
        assert torch.equal(before[key], after[key]), f"{key} changed"
    trainable = [k for k in before if k.startswith(("encoder.layers.2.", "encoder.layers.3.", "ctc_decoder."))
                 and before[k].is_floating_point()]
    changed = [k for k in trainable if not torch.equal(before[k], after[k])]
    assert len(changed) > 0.8 * len(trainable)
    assert any("running_mean" in k for k in changed)  # unfrozen BatchNorm statistics do move
    assert metadata["parameters"]["frozen"] > 0 and metadata["parameters"]["trainable"] > 0
    assert metadata["frozen_modules"] == ["preprocessor", "encoder.pre_encode", "encoder.layers.0",
                                          "encoder.layers.1", "decoder", "joint"]
    # the outputs the metadata promises
    for name in ("training_curves.png", "logs/csv/metrics.csv", "data/train.jsonl", "data/validation.jsonl"):
        assert (tmp_path / "out" / name).is_file(), name
    assert list((tmp_path / "out" / "logs" / "tb").glob("events.out.tfevents.*"))
    assert 1 <= len(metadata["checkpoints"]["top_k"]) <= 2
    assert metadata["data"]["manifests"]["train"]["rows"] == 28  # 24 main-corpus rows + 4 RetaSy rows
    retasy_cap = metadata["data"]["blend"]["caps"]["max_retasy_samples"]
    assert (retasy_cap["asked"], retasy_cap["used"]) == (4, 4) and retasy_cap["available"] > 4
    assert metadata["tokenizer_coverage"]["missing_before"][0]["char"] in "\u0671\u06e1"  # Uthmani marks
    assert metadata["tokenizer_coverage"]["missing_after"] == []
    assert {"torch", "nemo_toolkit", "lightning"} <= set(metadata["versions"])


def test_ctc_only_training_never_calls_the_rnnt_loss(tmp_path, tiny_base, demo_data_stage, monkeypatch):
    from nemo.collections.asr.losses.rnnt import RNNTLoss

    from quranft.models import rnnt_loss
    from quranft.training.train import train_trial

    calls = []
    original = RNNTLoss.forward

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(RNNTLoss, "forward", counting)
    vectorised = []  # on the CPU the hybrid's RNNT loss is computed by quranft.models.rnnt_loss
    original_costs = rnnt_loss.rnnt_costs
    monkeypatch.setattr(rnnt_loss, "rnnt_costs", lambda *args: vectorised.append(1) or original_costs(*args))
    trials = write_trial(tmp_path / "trials", "ctc", max_steps=3, val_interval=3)
    write_trial(trials, "hybrid", max_steps=3, val_interval=3, ctc_only=False, freeze_rnnt_decoder=False)
    train_trial(load_trial(trials, "ctc"), tiny_base, sources(demo_data_stage), tmp_path / "ctc")
    assert calls == []
    metadata = train_trial(load_trial(trials, "hybrid"), tiny_base, sources(demo_data_stage), tmp_path / "hybrid")
    assert len(calls) >= 3 and metadata["training"]["global_step"] == 3
    assert len(vectorised) == len(calls)


def test_duration_batches_train_and_every_validation_sees_each_validation_clip_once(tmp_path, tiny_base,
                                                                                   demo_data_stage, monkeypatch):
    from quranft.models import nemo_models
    from quranft.training.configure import Resources
    from quranft.training.train import train_trial

    train_batches, validation_batches, workers = [], [], set()
    training_step, validation_pass = nemo_models.CTCOnlyHybridModel.training_step, \
        nemo_models.CTCOnlyHybridModel.validation_pass

    def recording_training_step(self, batch, batch_nb):
        signal, signal_len, transcript, transcript_len = batch  # NeMo's Lhotse batches: the same 4-tuple
        train_batches.append((signal_len / 16000).tolist())
        workers.add(self._train_dl.num_workers)
        return training_step(self, batch, batch_nb)

    def recording_validation_pass(self, batch, batch_idx, dataloader_idx=0):
        validation_batches.append((self.trainer.global_step, len(batch[1])))
        return validation_pass(self, batch, batch_idx, dataloader_idx)

    monkeypatch.setattr(nemo_models.CTCOnlyHybridModel, "training_step", recording_training_step)
    monkeypatch.setattr(nemo_models.CTCOnlyHybridModel, "validation_pass", recording_validation_pass)
    trials = write_trial(tmp_path / "trials", max_steps=30, val_interval=10, **DURATION_BATCHING)
    metadata = train_trial(load_trial(trials, "t"), tiny_base, sources(demo_data_stage), tmp_path / "out",
                           Resources(threads=3))

    # two data-loading workers (tokenizing too) beside the training loop's thread
    assert workers == {2} and metadata["device"]["data_workers"] == 2
    # 28 clips of 1.5 to 12 s: more than one epoch of no known length, ended by max_steps
    assert metadata["training"]["global_step"] == 30 and len(train_batches) == 30
    assert all(sum(batch) <= 16.0 for batch in train_batches)
    assert len({len(batch) for batch in train_batches}) > 1  # as many clips as fit
    assert metadata["training"]["samples_seen"] == sum(len(batch) for batch in train_batches) > 28
    assert metadata["training"]["audio_seconds_seen"] == pytest.approx(sum(map(sum, train_batches)), abs=0.1)
    assert metadata["training"]["samples_per_second"] == pytest.approx(
        metadata["training"]["samples_seen"] / metadata["training"]["fit_seconds"], rel=0.01)
    # validation at steps 10, 20 and 30, each over the whole validation manifest once
    validations = {}
    for step, clips in validation_batches:
        validations[step] = validations.get(step, 0) + clips
    assert validations == {10: 8, 20: 8, 30: 8} and metadata["data"]["manifests"]["validation"]["rows"] == 8
    metrics = (tmp_path / "out" / "logs" / "csv" / "metrics.csv").read_text(encoding="utf-8")
    assert metrics.splitlines()[0].count("val_wer") and 1 <= len(metadata["checkpoints"]["top_k"]) <= 2
    assert (tmp_path / "out" / "checkpoints" / "last.ckpt").is_file()


def test_a_job_of_8_threads_loads_with_7_workers_and_ddp_processes_share_them():
    from quranft.training.configure import Resources, threads_per_process

    assert threads_per_process(Resources(threads=8)) - 1 == 7
    assert threads_per_process(Resources(threads=8, gpus=2)) - 1 == 3
    assert threads_per_process(Resources(threads=2, cpu_processes=2)) - 1 == 0


def train_command(config: Path, trial: str, base: Path, workdir: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "quranft", "train", "--config", str(config), "--trial", trial,
            "--base-model", str(base), "--data-dir", str(workdir / "results" / "data"), "--out-dir", str(out), *extra]


def cli_config(tmp_path: Path, trials: Path) -> Path:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text(encoding="utf-8"))
    config["trials"] = {"dir": str(trials), "names": sorted(p.stem for p in trials.glob("*.yaml"))}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_unknown_characters_stop_training_before_the_first_step(tmp_path, demo_data_stage):
    from quranft.training.configure import TrainingError
    from quranft.training.train import train_trial

    # The demo base's tokenizer was trained on the Tanzil simple text: it lacks the Uthmani marks.
    trials = write_trial(tmp_path / "trials", text_option="keep")
    with pytest.raises(TrainingError) as error:
        train_trial(load_trial(trials, "t"), REPO / "demo" / "base_model.nemo", sources(demo_data_stage),
                    tmp_path / "out")
    message = str(error.value)
    assert message.startswith(f"{trials / 't.yaml'}: ")
    assert "above key 'max_unknown_char_fraction' (0.001)" in message
    assert re.search(r"U\+0671 ARABIC LETTER ALEF WASLA \(\u0671\) \d+ times", message)
    assert "text_option: map_missing" in message
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_two_process_cpu_ddp_trains(tmp_path, tiny_base, demo_data_stage):
    """Two processes on the CPU (gloo DDP, the code path of N GPUs), duration batches, and a
    CTC-only trial that leaves its RNNT decoder unfrozen in the file. Fixed batches on two devices,
    each rank's own batches and samples: tests/test_slurm.py's two-device run."""
    trials = write_trial(tmp_path / "trials", max_steps=4, val_interval=2, freeze_rnnt_decoder=False,
                         **DURATION_BATCHING)
    command = train_command(cli_config(tmp_path, trials), "t", tiny_base, demo_data_stage, tmp_path / "out",
                            "--cpu-processes", "2")
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), MASTER_PORT="29517")
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    metadata = json.loads((tmp_path / "out" / "training_metadata.json").read_text())
    assert metadata["device"]["devices"] == 2 and metadata["device"]["strategy"] == "ddp"
    assert metadata["training"]["global_step"] == 4
    assert "gloo" in result.stderr + result.stdout
    ranks = [json.loads((tmp_path / "out" / "logs" / "ranks" / f"rank{k}.json").read_text()) for k in (0, 1)]
    assert [(r["rank"], r["world_size"]) for r in ranks] == [(0, 2), (1, 2)]
    assert metadata["training"]["samples_seen"] == sum(r["samples"] for r in ranks) > 0  # summed over the ranks
    # no gradient reaches them: frozen, and the log says why
    assert {"decoder", "joint"} <= set(metadata["frozen_modules"])
    assert "the CTC loss does not reach the RNNT decoder and joint: they are frozen" in result.stderr


def test_more_frozen_layers_than_the_encoder_has_names_the_file_and_key(tmp_path, tiny_base, demo_data_stage):
    from quranft.training.configure import TrainingError
    from quranft.training.train import train_trial

    trials = write_trial(tmp_path / "trials", freeze_encoder_layers=10)
    with pytest.raises(TrainingError, match=r"t\.yaml: key 'freeze_encoder_layers' is 10, but the base model's "
                                            r"encoder has 4 layers"):
        train_trial(load_trial(trials, "t"), tiny_base, sources(demo_data_stage), tmp_path / "out")


def test_the_demo_base_model_rule_builds_a_hybrid_model_the_benchmark_transcribes_with(tmp_path):
    """pretrain-demo-base as the rule runs it, at toy settings: data stage, tokenizer, model; the
    benchmark's transcription path then runs on the model it wrote."""
    import numpy as np
    from nemo.collections.asr.models import ASRModel

    from quranft.models.transcribe import transcribe_files, use_ctc_greedy

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text(encoding="utf-8"))
    demo = yaml.safe_load((REPO / "config" / "demo.yaml").read_text(encoding="utf-8"))
    config["sources"]["quran_ayah_corpus"]["dataset"] = str(REPO / demo["sources"]["quran_ayah_corpus"]["dataset"])
    config["sources"]["retasy"]["dataset"] = str(REPO / demo["sources"]["retasy"]["dataset"])
    config["benchmark"]["corpus"] = str(REPO / "demo" / "benchmark")
    base_domain = {"dataset": str(REPO / demo["demo_base"]["source"]["dataset"]),
                   "splits": {"train": "train", "validation": "validation"}}
    config["demo_base"] = {"source": base_domain, "vocab_size": 64, "d_model": 16, "n_layers": 2, "n_heads": 2, "subsampling_channels": 8,
                           "max_steps": 3, "val_interval": 3, "batch_size": 8}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    out = tmp_path / "base.nemo"
    subprocess.run([sys.executable, "-m", "quranft", "pretrain-demo-base", "--config", str(path), "--output", str(out)],
                   env=dict(os.environ, PYTHONPATH=str(REPO / "src")), check=True, capture_output=True, timeout=600)
    model = ASRModel.restore_from(str(out), map_location="cpu")
    assert type(model).__name__ == "EncDecHybridRNNTCTCBPEModel" and len(model.encoder.layers) == 2
    assert model.tokenizer.vocab_size == 64
    use_ctc_greedy(model)
    clips = [str(REPO / "demo" / "benchmark" / name) for name in ("user_103_001.m4a", "everyayah_112_002.wav")]
    for transcript in transcribe_files(model, clips, keep_log_probs=True):
        assert transcript.error is None and isinstance(transcript.text, str)
        assert transcript.log_probs.shape[1] == 65  # 64 pieces and the blank
        np.testing.assert_allclose(np.exp(transcript.log_probs).sum(axis=1), 1.0, rtol=1e-4)
    metadata = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert metadata["steps"] == 3 and metadata["validation"]["val_wer"] >= 0.0
    assert metadata["settings"]["source"]["dataset"].endswith("base_domain")  # the base domain, not the sources
