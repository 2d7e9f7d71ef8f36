"""NeMo model surgery: the tiny demo model, CTC-only training, layer freezing, loading and saving.

Imports NeMo (slow, about 10 s): only the training, averaging and benchmark stages use this module.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from nemo.collections.asr.models import ASRModel, EncDecCTCModelBPE, EncDecHybridRNNTCTCBPEModel
from nemo.core.connectors.save_restore_connector import SaveRestoreConnector
from omegaconf import DictConfig, OmegaConf, open_dict

from quranft.errors import QuranftError
from quranft.fileio import check_nemo_archive
from quranft.models.memory import release_freed_memory

log = logging.getLogger("quranft")

class NotAHybridModel(QuranftError, TypeError):
    """A .nemo of another kind of model; the message names the file."""


BASE_CLASS = "nemo.collections.asr.models.hybrid_rnnt_ctc_bpe_models.EncDecHybridRNNTCTCBPEModel"
CTC_CLASS = "nemo.collections.asr.models.ctc_bpe_models.EncDecCTCModelBPE"
# The hybrid's config keys that a CTC model has not: the RNNT head's, and the CTC head's own section
# (aux_ctc), whose decoder and decoding become the CTC model's.
HYBRID_ONLY_KEYS = ("model_defaults", "joint", "aux_ctc", "loss", "compute_eval_loss", "nemo_version")


def train_tokenizer(texts: Iterable[str], out_dir: str | Path, vocab_size: int) -> Path:
    """A SentencePiece unigram tokenizer in the layout NeMo's BPE models read (tokenizer.model)."""
    import sentencepiece as spm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    corpus = out_dir / "text.txt"
    corpus.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(out_dir / "tokenizer"), vocab_size=vocab_size,
        model_type="unigram", character_coverage=1.0, bos_id=-1, eos_id=-1, unk_id=0,
        split_digits=True, num_threads=1, minloglevel=2,
    )
    processor = spm.SentencePieceProcessor(model_file=str(out_dir / "tokenizer.model"))
    (out_dir / "vocab.txt").write_text(
        "".join(processor.id_to_piece(i) + "\n" for i in range(processor.get_piece_size())), encoding="utf-8"
    )
    corpus.unlink()
    return out_dir


def tiny_hybrid_config(tokenizer_dir: str | Path, d_model: int, n_layers: int, n_heads: int,
                       pred_hidden: int, joint_hidden: int, subsampling_channels: int | None = None,
                       dropout: float = 0.1) -> DictConfig:
    """A FastConformer hybrid RNNT+CTC BPE model of the real one's family, at toy size."""
    return OmegaConf.create({
        "sample_rate": 16000,
        "compute_eval_loss": False,
        "log_prediction": False,
        "skip_nan_grad": False,
        "model_defaults": {"enc_hidden": d_model, "pred_hidden": pred_hidden, "joint_hidden": joint_hidden},
        "tokenizer": {"dir": str(tokenizer_dir), "type": "bpe"},
        "preprocessor": {
            "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
            "sample_rate": 16000, "normalize": "per_feature", "window_size": 0.025, "window_stride": 0.01,
            "window": "hann", "features": 80, "n_fft": 512, "frame_splicing": 1, "dither": 1e-5, "pad_to": 0,
        },
        "spec_augment": {
            "_target_": "nemo.collections.asr.modules.SpectrogramAugmentation",
            "freq_masks": 2, "time_masks": 10, "freq_width": 27, "time_width": 0.05,
        },
        "encoder": {
            "_target_": "nemo.collections.asr.modules.ConformerEncoder",
            "feat_in": 80, "feat_out": -1, "n_layers": n_layers, "d_model": d_model,
            "subsampling": "dw_striding", "subsampling_factor": 8,
            "subsampling_conv_channels": subsampling_channels or d_model,
            "ff_expansion_factor": 4, "self_attention_model": "rel_pos", "n_heads": n_heads,
            "att_context_size": [-1, -1], "xscaling": True, "pos_emb_max_len": 5000,
            "conv_kernel_size": 9, "conv_norm_type": "batch_norm",
            "dropout": dropout, "dropout_pre_encoder": dropout, "dropout_emb": 0.0, "dropout_att": dropout,
        },
        "decoder": {
            "_target_": "nemo.collections.asr.modules.RNNTDecoder",
            "normalization_mode": None, "random_state_sampling": False, "blank_as_pad": True,
            "prednet": {"pred_hidden": pred_hidden, "pred_rnn_layers": 1, "t_max": None, "dropout": 0.1},
        },
        "joint": {
            "_target_": "nemo.collections.asr.modules.RNNTJoint",
            "log_softmax": None, "preserve_memory": False, "fuse_loss_wer": False,
            "jointnet": {"joint_hidden": joint_hidden, "activation": "relu", "dropout": 0.1},
        },
        "decoding": {"strategy": "greedy_batch", "greedy": {"max_symbols": 10}},
        "aux_ctc": {
            "ctc_loss_weight": 0.3, "use_cer": False, "ctc_reduction": "mean_batch",
            "decoder": {"_target_": "nemo.collections.asr.modules.ConvASRDecoder", "feat_in": None,
                        "num_classes": -1, "vocabulary": []},
            "decoding": {"strategy": "greedy_batch"},
        },
        "loss": {"loss_name": "default"},
        "optim": {"name": "adamw", "lr": 1e-3, "weight_decay": 1e-3, "betas": [0.9, 0.98]},
    })


class CTCOnlyHybridModel(EncDecHybridRNNTCTCBPEModel):
    """The hybrid model trained through its CTC head alone: the RNNT loss is never computed.

    NeMo's hybrid training step always runs the RNNT loss (ctc_loss_weight=1.0 only multiplies it
    by zero), and on GPUs that loss needs numba's libNVVM. This subclass keeps the architecture
    and the saved config unchanged (its .nemo files are plain EncDecHybridRNNTCTCBPEModel files);
    only training_step and validation_pass differ. Validation reports the CTC WER as both
    val_wer and val_wer_ctc.
    """

    def training_step(self, batch, batch_nb):
        signal, signal_len, transcript, transcript_len = batch
        encoded, encoded_len = self.forward(input_signal=signal, input_signal_length=signal_len)
        log_probs = self.ctc_decoder(encoder_output=encoded)
        loss = self.ctc_loss(
            log_probs=log_probs, targets=transcript, input_lengths=encoded_len, target_lengths=transcript_len
        )
        self.log_dict({
            "train_loss": loss,
            "train_ctc_loss": loss,
            "learning_rate": self._optimizer.param_groups[0]["lr"],
            "global_step": torch.tensor(self.trainer.global_step, dtype=torch.float32),
        })
        return {"loss": loss}

    def validation_pass(self, batch, batch_idx, dataloader_idx=0):
        signal, signal_len, transcript, transcript_len = batch
        encoded, encoded_len = self.forward(input_signal=signal, input_signal_length=signal_len)
        log_probs = self.ctc_decoder(encoder_output=encoded)
        loss = self.ctc_loss(
            log_probs=log_probs, targets=transcript, input_lengths=encoded_len, target_lengths=transcript_len
        )
        self.ctc_wer.update(predictions=log_probs, targets=transcript, targets_lengths=transcript_len,
                            predictions_lengths=encoded_len)
        wer, wer_num, wer_denom = self.ctc_wer.compute()
        self.ctc_wer.reset()
        return {
            "val_loss": loss,
            "val_wer_num": wer_num, "val_wer_denom": wer_denom, "val_wer": wer,
            "val_wer_num_ctc": wer_num, "val_wer_denom_ctc": wer_denom, "val_wer_ctc": wer,
        }

    def multi_validation_epoch_end(self, outputs, dataloader_idx: int = 0):
        if not outputs:
            return {}
        loss = torch.stack([x["val_loss"] for x in outputs]).mean()
        num = torch.stack([x["val_wer_num"] for x in outputs]).sum()
        denom = torch.stack([x["val_wer_denom"] for x in outputs]).sum()
        wer = num.float() / denom
        return {"val_loss": loss, "log": {"val_loss": loss, "val_wer": wer, "val_wer_ctc": wer}}


class _OneCopyRestore(SaveRestoreConnector):
    """NeMo's restore with one copy of the weights in memory, not two.

    NeMo builds the model (its weights freshly initialised), loads the checkpoint beside it and
    copies the checkpoint in: both are held at once, 460 MB each at real size (a 1.66 GB peak for
    the replica of NVIDIA's model, 1.23 GB without the second copy). Here the checkpoint file is
    only moved aside while NeMo's temporary folder exists; then the model's weights are let go
    (their storage emptied, their shapes kept) and the checkpoint's tensors put in their place
    (load_state_dict(assign=True)). The values are the checkpoint's either way; the buffers the
    state dict does not hold (non-persistent: the positional encodings) stay as the model built
    them. Hand-written because NeMo has no hook between building the model and loading the file.
    """

    def __init__(self, aside: Path):
        super().__init__()
        self.aside = aside

    def _load_state_dict_from_disk(self, model_weights, map_location="cpu"):
        moved = self.aside / Path(model_weights).name
        Path(model_weights).replace(moved)
        return moved, map_location  # loaded by load_instance_with_state_dict, after the model's weights go

    def load_instance_with_state_dict(self, instance, state_dict, strict):
        checkpoint, map_location = state_dict
        for tensor in instance.state_dict(keep_vars=True).values():
            tensor.data.untyped_storage().resize_(0)
        release_freed_memory()
        instance.load_state_dict(torch.load(checkpoint, map_location=map_location), strict=strict, assign=True)
        instance._set_model_restore_state(is_being_restored=False)


def restore(path: str | Path, ctc_only: bool = False, map_location: str = "cpu", hybrid: bool = False):
    """Open a .nemo file: a hybrid RNNT/CTC model, or the CTC model a CTC-only trial saves (save's
    `ctc_only`); only a hybrid with `hybrid` (a base model to train from, or whose checkpoints to
    average) or `ctc_only`, which opens it as CTCOnlyHybridModel, for CTC-only training. A file
    that is not a complete .nemo archive, or of another kind of model, is refused in one line.
    The same model as NeMo's restore_from, holding one copy of the weights while loading
    (_OneCopyRestore)."""
    check_nemo_archive(path)
    cls = CTCOnlyHybridModel if ctc_only else ASRModel
    with tempfile.TemporaryDirectory(prefix="nemo-weights-") as aside:
        try:
            model = cls.restore_from(str(path), map_location=torch.device(map_location),
                                     save_restore_connector=_OneCopyRestore(Path(aside)))
        finally:  # what NeMo's restore_from leaves without a connector of its own: a plain one (save_to's)
            cls.update_save_restore_connector(SaveRestoreConnector())
    model._save_restore_connector = cls._save_restore_connector
    kinds = (EncDecHybridRNNTCTCBPEModel,) if hybrid or ctc_only else (EncDecHybridRNNTCTCBPEModel, EncDecCTCModelBPE)
    if not isinstance(model, kinds):
        raise NotAHybridModel(f"{path}: a {type(model).__name__}, not a hybrid RNNT/CTC BPE model"
                              + ("" if len(kinds) == 1 else " nor a CTC BPE model"))
    return model


def _ctc_config(model: EncDecHybridRNNTCTCBPEModel) -> DictConfig:
    """The hybrid's config as a CTC model's: its CTC head's decoder and decoding at the top level,
    the RNNT sections dropped (the layout of NeMo's own convert_nemo_asr_hybrid_to_ctc.py)."""
    values = OmegaConf.to_container(model.cfg, resolve=True)
    head = values["aux_ctc"]
    values.update(decoder=head["decoder"], decoding=head["decoding"],
                  ctc_reduction=head.get("ctc_reduction", "mean_batch"), target=CTC_CLASS)
    for key in HYBRID_ONLY_KEYS:
        values.pop(key, None)
    # NeMo's transcribe reads validation_ds.use_start_end_token; a model built without validation
    # data (the tiny models' config) has no such section, and transcribe would fail on it
    values.setdefault("validation_ds", {"manifest_filepath": None, "use_start_end_token": False})
    return OmegaConf.create(values)


def ctc_state_dict(hybrid: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A hybrid's weights as its CTC model's (as_ctc_model): the CTC head's `ctc_decoder.*` as
    `decoder.*`, the RNNT decoder's and joint's left out, the rest unchanged."""
    kept = {key: tensor for key, tensor in hybrid.items() if not key.startswith(("decoder.", "joint.", "ctc_decoder."))}
    return {**kept, **{"decoder." + key.removeprefix("ctc_decoder."): tensor for key, tensor in hybrid.items()
                       if key.startswith("ctc_decoder.")}}


def as_ctc_model(model: EncDecHybridRNNTCTCBPEModel, work: Path) -> EncDecCTCModelBPE:
    """The hybrid as NeMo's CTC model: its preprocessor, encoder and CTC head (the CTC model's
    decoder), the RNNT decoder and joint left out; `work` holds a temporary copy of the hybrid,
    which the CTC model is restored from (that is how NeMo carries the tokenizer's files over).

    Why: NeMo's hybrid model decodes with its RNNT head whenever it is restored (its __init__ sets
    cur_decoder = "rnnt", and nothing in the saved config changes that), so a hybrid .nemo of a
    CTC-only trial would transcribe with a head that the trial never trained nor the benchmark
    judged. A CTC model's restore_from(...).transcribe(...) decodes with the CTC head, with the
    decoding the benchmark uses (transcribe.use_ctc_greedy), which the saved config keeps.
    """
    from quranft.models.transcribe import use_ctc_greedy

    hybrid = work / "hybrid.nemo"
    with open_dict(model.cfg):
        model.cfg.target = BASE_CLASS
    model.save_to(str(hybrid))
    ctc = EncDecCTCModelBPE.restore_from(str(hybrid), override_config_path=_ctc_config(model),
                                         map_location=torch.device("cpu"), strict=False)
    ctc.load_state_dict(ctc_state_dict(model.state_dict()), strict=True)  # every tensor, and nothing else
    use_ctc_greedy(ctc)
    return ctc


def save(model: EncDecHybridRNNTCTCBPEModel | EncDecCTCModelBPE, path: str | Path, ctc_only: bool = False) -> None:
    """Save as a plain NeMo .nemo, atomically (temporary name, then rename): a hybrid model as
    EncDecHybridRNNTCTCBPEModel, or, with `ctc_only`, as NeMo's CTC model (as_ctc_model), so that
    NeMo decodes it with the CTC head by default."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if ctc_only and isinstance(model, EncDecHybridRNNTCTCBPEModel):
        with tempfile.TemporaryDirectory(prefix="ctc-model-", dir=path.parent) as work:
            as_ctc_model(model, Path(work)).save_to(str(tmp))
    else:
        with open_dict(model.cfg):
            model.cfg.target = CTC_CLASS if isinstance(model, EncDecCTCModelBPE) else BASE_CLASS
        model.save_to(str(tmp))
    tmp.replace(path)


def can_encode(model: EncDecHybridRNNTCTCBPEModel):
    """A predicate: does the model's tokenizer encode this character without an unknown token?"""
    tokenizer = model.tokenizer
    unk = getattr(tokenizer, "unk_id", None)
    if unk is None or unk < 0:
        unk = tokenizer.tokenizer.unk_id()

    def check(char: str) -> bool:
        return unk not in tokenizer.text_to_ids(char)

    return check


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable, "frozen": total - trainable}


def frozen_modules(model: EncDecHybridRNNTCTCBPEModel, freeze_encoder_layers: int, freeze_rnnt_decoder: bool,
                   ctc_only: bool = False) -> list[tuple[str, torch.nn.Module]]:
    """The modules a trial freezes: the preprocessor always; with N > 0 frozen encoder layers, also
    the subsampling below them; the first N layers; the RNNT decoder and joint when asked, and
    always when training is CTC-only: no loss reaches them then, and parameters left trainable
    without a gradient make DDP fail at its second step (it expects every one to get one)."""
    layers = model.encoder.layers
    if not 0 <= freeze_encoder_layers <= len(layers):
        raise ValueError(f"freeze_encoder_layers={freeze_encoder_layers}, but the encoder has {len(layers)} layers")
    modules = [("preprocessor", model.preprocessor)]
    if freeze_encoder_layers > 0:
        modules.append(("encoder.pre_encode", model.encoder.pre_encode))
        modules += [(f"encoder.layers.{i}", layers[i]) for i in range(freeze_encoder_layers)]
    if ctc_only and not freeze_rnnt_decoder:
        log.warning("ctc_only: the CTC loss does not reach the RNNT decoder and joint: they are frozen "
                    "(freeze_rnnt_decoder: false has no effect without the RNNT loss)")
    if freeze_rnnt_decoder or ctc_only:
        modules += [("decoder", model.decoder), ("joint", model.joint)]
    return modules


def freeze(modules: list[tuple[str, torch.nn.Module]]) -> None:
    """No gradients, and eval mode so that BatchNorm statistics and dropout stay fixed too."""
    for _, module in modules:
        module.requires_grad_(False)
        module.eval()


def update_config(model: EncDecHybridRNNTCTCBPEModel, section: str, values: dict[str, Any]) -> None:
    with open_dict(model.cfg):
        for key, value in values.items():
            model.cfg[section][key] = value
