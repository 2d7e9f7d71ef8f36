"""The base model: NVIDIA's pretrained checkpoint (or any local .nemo), or its full-size replica.

`materialize` puts the configured base model at results/base/model.nemo, so that the untouched
base is benchmarked exactly like the trials. `make_replica_base` builds NVIDIA's architecture with
random weights, for measuring the workflow at real size offline. The demo's tiny stand-in is
trained by quranft.training.demo_base.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from quranft.config import is_hub_id
from quranft.errors import QuranftError
from quranft.fileio import check_nemo_archive, write_json
from quranft.provenance import versions
from quranft.quran import tanzil

log = logging.getLogger("quranft")


class BaseModelError(QuranftError, RuntimeError):
    """A base model that cannot be had; the message names it."""


def materialize(base_model: str, out: str | Path) -> dict[str, Any]:
    """Copy a local .nemo, or fetch a pretrained model by name, to `out` (atomically)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    local = Path(base_model)
    tmp = out.with_name(f".{out.name}.tmp")
    if local.exists() or not is_hub_id(base_model):
        if not local.is_file():
            raise BaseModelError(f"base_model {base_model}: no such .nemo file")
        check_nemo_archive(local)
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

    from quranft.models import nemo_models

    started = time.time()
    out = Path(out)
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as work:
        tokenizer_dir = nemo_models.train_tokenizer(tanzil.verses(tokenizer_text).values(),
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
