"""The demo's stand-in for NVIDIA's checkpoint, pretrained on the demo's base domain.

A FastConformer hybrid RNNT+CTC BPE model of the same family at toy size, with its own
SentencePiece unigram tokenizer trained on the diacritized Tanzil text, trained through its CTC
head on the base domain (demo/base_domain) so that it already transcribes that domain. It trains
the way the trials do (quranft.training.configure: loaders, AdamW with warm-up and cosine decay,
the Trainer), with its own settings (config key `demo_base`).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from omegaconf import open_dict

from quranft.config import ConfigError
from quranft.data.benchmark_index import build_index, write_index
from quranft.data.blend import blend, write_manifest
from quranft.data.prepare import prepare_source
from quranft.fileio import read_jsonl, write_json
from quranft.models import nemo_models
from quranft.provenance import versions
from quranft.quran import tanzil
from quranft.quran.tokenizer_coverage import make_mapper, missing_characters
from quranft.training import dataloading
from quranft.training.configure import Resources, build_trainer, device_settings, loader_settings, optim_config


def new_demo_model(settings: dict[str, Any], work: Path) -> nemo_models.CTCOnlyHybridModel:
    """An untrained toy model of the family, with a tokenizer trained on the Tanzil text."""
    tokenizer_dir = nemo_models.train_tokenizer(
        tanzil.verses(settings["tokenizer_text"]).values(), work / "tokenizer", settings["vocab_size"]
    )
    config = nemo_models.tiny_hybrid_config(
        tokenizer_dir, d_model=settings["d_model"], n_layers=settings["n_layers"], n_heads=settings["n_heads"],
        pred_hidden=settings["d_model"], joint_hidden=settings["d_model"],
        subsampling_channels=settings["subsampling_channels"], dropout=settings["dropout"],
    )
    config.spec_augment.update(freq_masks=1, time_masks=2, freq_width=10)
    return nemo_models.CTCOnlyHybridModel(cfg=config)


def mapped_manifests(model, manifests: dict[str, str | Path], work: Path) -> dict[str, str]:
    """The manifests with absolute audio paths and their text mapped to the model's tokenizer."""
    can_encode = nemo_models.can_encode(model)
    written = {}
    for split, path in manifests.items():
        rows = read_jsonl(path)
        for row in rows:
            row["audio_filepath"] = str(Path(path).parent / row["audio_filepath"])
        mapper = make_mapper("map_missing", missing_characters((r["text"] for r in rows), can_encode))
        written[split] = str(work / f"{split}.jsonl")
        write_manifest(written[split], [{**r, "text": mapper(r["text"])} for r in rows])
    return written


def pretrain_demo_base(train_manifest: str | Path, validation_manifest: str | Path, out: str | Path,
                       settings: dict[str, Any], threads: int = 1) -> dict[str, Any]:
    """Train the demo's tiny base model; write `out` (.nemo) and `<out>.json` (metadata)."""
    started = time.time()
    out = Path(out)
    resources = Resources(threads=max(1, threads))
    torch.set_num_threads(resources.threads)
    pl.seed_everything(settings["seed"], workers=True)
    with tempfile.TemporaryDirectory() as work:
        model = new_demo_model(settings, Path(work))
        manifests = mapped_manifests(model, {"train": train_manifest, "validation": validation_manifest}, Path(work))
        common = loader_settings(model.cfg.sample_rate, resources)
        with open_dict(model.cfg):
            model.cfg.train_ds = dataloading.train_config({"batching": dataloading.FIXED, **settings},
                                                          manifests["train"], [], common)
            model.cfg.validation_ds = dataloading.validation_config(manifests["validation"], settings["batch_size"],
                                                                    common)
            model.cfg.optim = optim_config(settings["lr"], settings["lr"] / 20, 1e-3, settings["warmup_steps"],
                                           settings["max_steps"])
        model.setup_training_data(model.cfg.train_ds)
        model.setup_validation_data(model.cfg.validation_ds)
        trainer = build_trainer(device_settings(resources), settings["max_steps"], settings["val_interval"],
                                gradient_clip_val=1.0)
        model.set_trainer(trainer)
        model.setup_optimization(model.cfg.optim)
        trainer.fit(model)
        with open_dict(model.cfg):
            model.cfg.train_ds.manifest_filepath = None
            model.cfg.validation_ds.manifest_filepath = None
        nemo_models.save(model, out)
    metadata = {
        "model": str(out), "settings": settings, "parameters": nemo_models.count_parameters(model),
        "validation": {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_")},
        "steps": trainer.global_step, "wall_seconds": round(time.time() - started, 1),
        "note": "trained through the CTC head only: the RNNT decoder and joint keep their initial weights",
        "versions": versions(),
    }
    write_json(out.with_suffix(".json"), metadata)
    return metadata


def pretrain_from_config(config: dict[str, Any], out: str | Path, threads: int = 1) -> dict[str, Any]:
    """The rule pretrain_demo_base: the base domain (demo_base.source) through the data stage,
    privately (the same filters and leakage guard as the trials' sources get), then pretraining."""
    source = config["demo_base"].get("source")
    if not source or set(source["splits"]) != {"train", "validation"}:
        raise ConfigError("config key 'demo_base.source': the base domain to pretrain on, a source with "
                          "train and validation splits (the demo's is demo/base_domain)")
    with tempfile.TemporaryDirectory(prefix="demo-base-") as work:
        index, _ = build_index(config["benchmark"]["corpus"])
        write_index(index, Path(work) / "fingerprints.npz")
        prepare_source("base_domain", source, config["data"], Path(work) / "base_domain",
                       benchmark_index=Path(work) / "fingerprints.npz", workers=threads)
        blend({"quran_ayah_corpus": Path(work) / "base_domain"}, False, work)  # the main (only) corpus
        return pretrain_demo_base(Path(work) / "train.jsonl", Path(work) / "validation.jsonl", out,
                                  config["demo_base"], threads=threads)
