"""The base model: NVIDIA's pretrained checkpoint (or any local .nemo), or the demo's tiny stand-in.

`materialize` puts the configured base model at results/base/model.nemo, so that the untouched
base is benchmarked exactly like the trials. `pretrain_demo_base` builds the demo's stand-in for
NVIDIA's checkpoint: a FastConformer hybrid RNNT+CTC BPE model of the same family at toy size, with
its own SentencePiece unigram tokenizer trained on the diacritized Tanzil text, trained (CTC head)
on the demo corpus so that it already transcribes the demo voices.
"""

from __future__ import annotations

import logging
import shutil
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from quranft.errors import QuranftError
from quranft.fileio import write_json

log = logging.getLogger("quranft")


class BaseModelError(QuranftError, RuntimeError):
    """A base model that cannot be had; the message names it."""


def _check_nemo_file(path: Path) -> None:
    try:
        with tarfile.open(path) as archive:
            names = {Path(n).name for n in archive.getnames()}
    except (tarfile.TarError, OSError) as error:
        raise BaseModelError(f"{path}: not a .nemo archive ({error})") from None
    if "model_config.yaml" not in names or "model_weights.ckpt" not in names:
        raise BaseModelError(f"{path}: not a .nemo archive (no model_config.yaml and model_weights.ckpt)")


def materialize(base_model: str, out: str | Path) -> dict[str, Any]:
    """Copy a local .nemo, or fetch a pretrained model by name, to `out` (atomically)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    local = Path(base_model)
    tmp = out.with_name(f".{out.name}.tmp")
    if local.suffix == ".nemo" or local.exists():
        if not local.is_file():
            raise BaseModelError(f"base_model {base_model}: no such .nemo file")
        _check_nemo_file(local)
        shutil.copyfile(local, tmp)
        origin = {"kind": "local", "path": str(local)}
    else:
        from nemo.collections.asr.models import ASRModel

        try:
            model = ASRModel.from_pretrained(base_model, map_location="cpu")
        except Exception as error:  # network, hub and NGC errors come in many types
            raise BaseModelError(
                f"base_model {base_model}: could not fetch the pretrained model ({type(error).__name__}: {error}); "
                "without network access, point base_model at a local .nemo file"
            ) from None
        model.save_to(str(tmp))
        origin = {"kind": "pretrained", "name": base_model}
    tmp.replace(out)
    return origin


def pretrain_demo_base(train_manifest: str | Path, validation_manifest: str | Path, out: str | Path,
                       settings: dict[str, Any], threads: int = 1) -> dict[str, Any]:
    """Train the demo's tiny base model; write `out` (.nemo) and `<out>.json` (metadata)."""
    import lightning.pytorch as pl
    import torch
    from omegaconf import open_dict

    from quranft import nemo_models, quran_text
    from quranft.blend import write_manifest
    from quranft.fileio import read_jsonl
    from quranft.text import make_mapper, missing_characters
    from quranft.train import versions

    started = time.time()
    out = Path(out)
    torch.set_num_threads(max(1, threads))
    pl.seed_everything(settings["seed"], workers=True)
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        tokenizer_dir = nemo_models.train_tokenizer(
            quran_text.verses(settings["tokenizer_text"]).values(), work / "tokenizer", settings["vocab_size"]
        )
        config = nemo_models.tiny_hybrid_config(
            tokenizer_dir, d_model=settings["d_model"], n_layers=settings["n_layers"], n_heads=settings["n_heads"],
            pred_hidden=settings["d_model"], joint_hidden=settings["d_model"],
            subsampling_channels=settings["subsampling_channels"], dropout=settings["dropout"],
        )
        config.spec_augment.update(freq_masks=1, time_masks=2, freq_width=10)
        model = nemo_models.CTCOnlyHybridModel(cfg=config)
        can_encode = nemo_models.can_encode(model)
        manifests = {}
        for split, path in (("train", train_manifest), ("validation", validation_manifest)):
            rows = read_jsonl(path)
            for row in rows:
                row["audio_filepath"] = str(Path(path).parent / row["audio_filepath"])
            mapper = make_mapper("map_missing", missing_characters((r["text"] for r in rows), can_encode))
            manifests[split] = work / f"{split}.jsonl"
            write_manifest(manifests[split], [{**r, "text": mapper(r["text"])} for r in rows])
        common = {"sample_rate": 16000, "num_workers": max(0, threads - 1), "pin_memory": False,
                  "batch_size": settings["batch_size"]}
        with open_dict(model.cfg):
            model.cfg.train_ds = {**common, "manifest_filepath": str(manifests["train"]), "shuffle": True,
                                  "max_duration": 30.0, "min_duration": 0.1}
            model.cfg.validation_ds = {**common, "manifest_filepath": str(manifests["validation"]), "shuffle": False}
            model.cfg.optim = {"name": "adamw", "lr": settings["lr"], "weight_decay": 1e-3, "betas": [0.9, 0.98],
                               "sched": {"name": "CosineAnnealing", "warmup_steps": settings["warmup_steps"],
                                         "min_lr": settings["lr"] / 20, "max_steps": settings["max_steps"]}}
        model.setup_training_data(model.cfg.train_ds)
        model.setup_validation_data(model.cfg.validation_ds)
        trainer = pl.Trainer(
            accelerator="cpu", devices=1, max_steps=settings["max_steps"], val_check_interval=settings["val_interval"],
            check_val_every_n_epoch=None, num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, gradient_clip_val=1.0,
        )
        model.set_trainer(trainer)
        model.setup_optimization(model.cfg.optim)
        trainer.fit(model)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_")}
        with open_dict(model.cfg):
            model.cfg.train_ds.manifest_filepath = None
            model.cfg.validation_ds.manifest_filepath = None
        nemo_models.save(model, out)
    metadata = {
        "model": str(out), "settings": settings, "parameters": nemo_models.count_parameters(model),
        "validation": metrics, "steps": trainer.global_step, "wall_seconds": round(time.time() - started, 1),
        "note": "trained through the CTC head only: the RNNT decoder and joint keep their initial weights",
        "versions": versions(),
    }
    write_json(out.with_suffix(".json"), metadata)
    return metadata


# NVIDIA's stt_ar_fastconformer_hybrid_large_pcd_v1.0, as its model card and config give it:
# FastConformer hybrid RNNT+CTC, 17 layers of d_model 512, 8 heads, dw_striding 8x subsampling with
# 256 channels, RNNT prediction and joint networks of 640, a 1024-piece SentencePiece unigram tokenizer.
REAL_SIZE = {"d_model": 512, "n_layers": 17, "n_heads": 8, "pred_hidden": 640, "joint_hidden": 640,
             "subsampling_channels": 256, "vocab_size": 1024}


def make_replica_base(out: str | Path, seed: int = 0, tokenizer_text: str = "simple") -> dict[str, Any]:
    """The full-size stand-in for NVIDIA's model: its architecture with random weights and a
    tokenizer of its size trained on the Tanzil text. Real-size memory, time and file sizes can
    be measured with it offline; what it transcribes is noise. Writes `out` and `<out>.json`."""
    import torch

    from quranft import nemo_models, quran_text
    from quranft.train import versions

    started = time.time()
    out = Path(out)
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as work:
        tokenizer_dir = nemo_models.train_tokenizer(quran_text.verses(tokenizer_text).values(),
                                                    Path(work) / "tokenizer", REAL_SIZE["vocab_size"])
        config = nemo_models.tiny_hybrid_config(
            tokenizer_dir, **{key: value for key, value in REAL_SIZE.items() if key != "vocab_size"})
        model = nemo_models.CTCOnlyHybridModel(cfg=config)
        nemo_models.save(model, out)
    metadata = {"model": str(out), "architecture": REAL_SIZE, "tokenizer_text": tokenizer_text, "seed": seed,
                "parameters": nemo_models.count_parameters(model), "bytes": out.stat().st_size,
                "note": "random weights: for measuring the workflow at real size, not for its predictions",
                "wall_seconds": round(time.time() - started, 1), "versions": versions()}
    write_json(out.with_suffix(".json"), metadata)
    return metadata
