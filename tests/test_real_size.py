"""The workflow's steps at real size: NVIDIA's architecture (114.6M parameters, random weights)
trained two steps, averaged and benchmarked on CPU, as `make rehearsal` does for the whole DAG (in
the test's process: the command lines of these stages are run at small size by the workflow tests)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO, small_corpus

pytestmark = pytest.mark.slow

NVIDIA_PARAMETERS = 114_621_442  # stt_ar_fastconformer_hybrid_large_pcd_v1.0


@pytest.fixture(scope="module")
def replica(tmp_path_factory):
    out = tmp_path_factory.mktemp("replica") / "replica_base.nemo"
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_replica_base.py"), "--out", str(out)], check=True,
                   capture_output=True, timeout=600)
    return out


def test_the_replica_has_nvidia_s_architecture(replica):
    metadata = json.loads(replica.with_suffix(".json").read_text(encoding="utf-8"))
    assert metadata["parameters"]["total"] == NVIDIA_PARAMETERS
    assert metadata["architecture"] == {"d_model": 512, "n_layers": 17, "n_heads": 8, "pred_hidden": 640,
                                        "joint_hidden": 640, "subsampling_channels": 256, "vocab_size": 1024}


def test_v1_trains_averages_and_benchmarks_at_real_size(replica, demo_data_stage, tmp_path):
    from quranft.evaluation.benchmark import run_benchmark
    from quranft.models import nemo_models
    from quranft.training.average import average_trial
    from quranft.training.train import train_trial
    from quranft.training.trials import load_trial

    overrides = {"max_steps": 2, "batch_size": 2, "grad_accum": 1, "warmup_steps": 1, "val_interval": 1,
                 "save_top_k": 2, "average_top_k": 2, "include_retasy": False, "max_train_samples": 8,
                 "max_val_samples": 3, "text_option": "map_missing"}
    trial = load_trial(REPO / "config" / "trials", "v1", overrides)
    sources = {name: demo_data_stage / "results" / "data" / name for name in ("quran_ayah_corpus", "retasy")}
    out = tmp_path / "v1"
    metadata = train_trial(trial, replica, sources, out)
    assert metadata["training"]["global_step"] == 2
    model = nemo_models.restore(replica)
    frozen = nemo_models.frozen_modules(model, 10, True)
    frozen_count = sum(p.numel() for _, module in frozen for p in module.parameters())
    assert metadata["parameters"] == {"total": NVIDIA_PARAMETERS, "trainable": NVIDIA_PARAMETERS - frozen_count,
                                      "frozen": frozen_count}
    assert len(metadata["checkpoints"]["top_k"]) == 2

    averaging = average_trial(out, replica, top_k=2, mode="always", max_val_clips=3)
    assert averaging["choice"] == "averaged" and averaging["validation_clips"] == 3
    # v1 trains the CTC head only: its model.nemo is NeMo's CTC model, the RNNT decoder and joint left out
    rnnt = sum(p.numel() for module in (model.decoder, model.joint) for p in module.parameters())
    saved = nemo_models.restore(out / "model.nemo")
    assert type(saved).__name__ == "EncDecCTCModelBPE"
    assert nemo_models.count_parameters(saved)["total"] == NVIDIA_PARAMETERS - rnnt

    corpus = small_corpus(tmp_path / "corpus", 3)
    manifest = json.loads((corpus / "manifest.json").read_text(encoding="utf-8"))
    # the CTC head only: the replica's random RNNT head decodes up to max_symbols tokens a frame
    run_benchmark(out / "model.nemo", corpus, tmp_path / "benchmark.json", "v1", matchers=("text", "ctc"), primary="ctc",
                  batch_size=2, decoders=("ctc",), log_probs_path=tmp_path / "log_probs.npz")
    benchmark = json.loads((tmp_path / "benchmark.json").read_text(encoding="utf-8"))
    assert [row["id"] for row in benchmark["rows"]] == [s["id"] for s in manifest["samples"]]
    assert all(row["transcript"] is not None for row in benchmark["rows"])
    assert benchmark["model"]["parameters"] == NVIDIA_PARAMETERS - rnnt
