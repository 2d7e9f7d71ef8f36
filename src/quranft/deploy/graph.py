"""The ONNX graph of a hybrid model's offline path: raw 16 kHz mono audio in, CTC log-probs out.

One graph, `audio [batch, samples]` float32 and `audio_lengths [batch]` int64 to
`log_probs [batch, frames, vocabulary + blank]` and `frame_lengths [batch]`: the model's own front
end (its AudioToMelSpectrogramPreprocessor, with the window, pre-emphasis, log guard, normalisation
and pad_to of its config), the encoder and the CTC head. No RNNT decoder or joint: the offline app
decodes with CTC, as the benchmark does.

Two exporters, each where it works and is fast (measured on the demo base model, docs/export-and-identify.md):
- the front end through torch's dynamo exporter (`torch.onnx.export(dynamo=True)`): its torch.stft
  does not go through the TorchScript-based exporter, which is why NeMo's own `export()` leaves the
  preprocessor out;
- the encoder and CTC head through the TorchScript-based exporter, after NeMo's own export
  preparation (module replacements, no type checks), as NeMo's `export()` does: a few seconds where
  dynamo took 44 s for the 1.8M-parameter demo model's whole graph, and NeMo users report dynamo
  breaking on other models of its family. NeMo's `export()` itself is not used because its CTC
  graph returns no frame lengths.
The two are joined into one self-contained file (no external weights) with onnx.compose.

The front end computes the log of the mel energies and their per-feature normalisation in float64
(log_in_float64): in float32 they were where onnxruntime-web's WASM kernels and native
onnxruntime's part (up to 1.2e-3 in the log-probs); in float64 the browser is within 1e-4 of Python.

The front end depends on the preprocessor alone, which fine-tuning does not change: it is exported
once from the base model (`write_front_end`, rule export_front_end) and reused by every export whose
preprocessor has the same fingerprint (its config and buffers: window, filterbank), which saves the
dynamo exporter's 8 s per demo model; any other model's front end is exported with it.

Before export, two changes that keep every output the same (parity is measured on every export):
- each Conformer block's pointwise convolutions (Conv1d, kernel 1) become the same product as a
  MatMul, so that int8 and int4 quantization (MatMul-only) covers their weights too, at MatMul's
  speed: onnxruntime's ConvInteger is slower than the float Conv it replaces;
- the subsampling's padded frames are zeroed only before the convolutions that mix frames and at
  the end, by a mask broadcast over channels and features (NeMo's MaskedConvSequential zeroes them
  before every layer, with the mask expanded to the activations' shape): the same values where
  they count, and each convolution then feeds its ReLU directly, which onnxruntime fuses into it
  (a tenth of the real-size int8 export's time in onnxruntime-web, docs/export-and-identify.md);
- the relative positional table keeps the positions of the longest clip the export takes
  (`max_seconds`) instead of NeMo's 5,000 frames (about 20 MB at real size).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
from pathlib import Path

import onnx
import torch
from torch import nn

from quranft.models.transcribe import ctc_head

AUDIO, AUDIO_LENGTHS = "audio", "audio_lengths"
LOG_PROBS, FRAME_LENGTHS = "log_probs", "frame_lengths"
FEATURES, FEATURE_LENGTHS = "features", "feature_lengths"
OPSET = 18
FINGERPRINT = "quranft.preprocessor_fingerprint"  # the front end's metadata key
# How this module builds a front end, part of its fingerprint: a front end built otherwise (before
# log_in_float64) is not reused.
FRONT_END_RECIPE = "log and normalisation in float64"
# The dynamo exporter traces one example; these bound the shapes the graph accepts.
EXAMPLE_SECONDS = (3.0, 2.0)


class PointwiseMatMul(nn.Module):
    """A Conv1d with kernel size 1 over [batch, channels, time], computed as a MatMul over the
    channels (the same product, in the graph as MatMul + Add between two Transposes)."""

    def __init__(self, conv: nn.Conv1d):
        super().__init__()
        self.weight = nn.Parameter(conv.weight.detach()[:, :, 0].t().contiguous(), requires_grad=False)
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.matmul(x.transpose(1, 2), self.weight)
        if self.bias is not None:
            y = y + self.bias
        return y.transpose(1, 2)


def is_pointwise(module: nn.Module) -> bool:
    return (isinstance(module, nn.Conv1d) and module.kernel_size == (1,) and module.groups == 1
            and module.stride == (1,) and module.padding == (0,) and module.dilation == (1,))


def pointwise_as_matmul(root: nn.Module) -> int:
    """Replace every pointwise Conv1d under `root` (the Conformer blocks' pointwise convolutions,
    the CTC head's classifier); returns how many were replaced."""
    replaced = 0
    for parent in list(root.modules()):
        for name, child in list(parent.named_children()):
            if is_pointwise(child):
                setattr(parent, name, PointwiseMatMul(child))
                replaced += 1
    return replaced


def mixes_frames(layer: nn.Module) -> bool:
    """Whether a subsampling layer's output at a frame depends on other frames: anything but a
    convolution of one frame (kernel 1 and stride 1 in time) or a parameter-free activation."""
    if isinstance(layer, nn.Conv2d):
        return layer.kernel_size[0] != 1 or layer.stride[0] != 1
    return not (type(layer).__module__ == nn.ReLU.__module__ and not list(layer.parameters()))


class LeanMaskedConvs(nn.Sequential):
    """NeMo's MaskedConvSequential (the subsampling's layers; padded frames zeroed) with the masks
    only where they change what reaches the output. Between two masks the layers are pointwise in
    time, so a padded frame's value reaches no valid frame before the next mask zeroes it; a
    mask times a layer's output (0 or 1 per frame) commutes with the activations. Same output,
    to the bit: the values of the valid frames go through the same operations."""

    def __init__(self, masked: nn.Sequential):
        super().__init__(*masked)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        from nemo.collections.asr.parts.submodules.subsampling import calculate_conv_output_size

        x = x.unsqueeze(1)  # (batch, 1, time, features), as MaskedConvSequential
        lengths = lengths.clone().float()
        for layer in self:
            if mixes_frames(layer):
                x = x * self.mask(x, lengths.long())
            x = layer(x)
            if getattr(layer, "stride", (1, 1)) != (1, 1):
                padding = ((layer._left_padding, layer._right_padding) if hasattr(layer, "_left_padding")
                           else layer.padding)  # CausalConv2D's own, as MaskedConvSequential reads it
                lengths = calculate_conv_output_size(lengths, layer.kernel_size[0], layer.stride[0], padding)
        return x * self.mask(x, lengths.long()), lengths.long()

    @staticmethod
    def mask(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(batch, 1, time, 1): 1 on the valid frames, broadcast over channels and features."""
        time = torch.arange(x.shape[2], device=x.device)
        return (time.unsqueeze(0) < lengths.unsqueeze(1)).to(x.dtype)[:, None, :, None]


def lean_subsampling_masks(encoder: nn.Module) -> bool:
    """Replace the encoder's MaskedConvSequential (NeMo 2.5 and later) by LeanMaskedConvs;
    whether there was one."""
    subsampling = getattr(encoder, "pre_encode", None)
    convs = getattr(subsampling, "conv", None)
    if type(convs).__name__ != "MaskedConvSequential":
        return False
    subsampling.conv = LeanMaskedConvs(convs)
    return True


def encoder_frames(encoder: nn.Module, seconds: float, window_stride: float) -> int:
    """Encoder frames of a clip of `seconds` (feature frames over the subsampling factor, rounded up)."""
    return math.ceil(seconds / window_stride / encoder.subsampling_factor) + 1


def limit_positions(encoder: nn.Module, frames: int) -> None:
    """Keep the relative positional table for clips of up to `frames` encoder frames."""
    pos_enc = getattr(encoder, "pos_enc", None)
    if pos_enc is None or not hasattr(pos_enc, "extend_pe"):
        return
    parameter = next(encoder.parameters())
    del pos_enc.pe  # extend_pe only ever grows the table
    pos_enc.extend_pe(frames, parameter.device, parameter.dtype)
    encoder.max_audio_length = frames


class FrontEnd(nn.Module):
    """The preprocessor, its log and everything after it (the per-feature normalisation, the
    masking) computed in float64, the features cast to float32 at the end (log_in_float64)."""

    def __init__(self, preprocessor: nn.Module):
        super().__init__()
        self.preprocessor = preprocessor

    def forward(self, audio: torch.Tensor, audio_lengths: torch.Tensor):
        with log_in_float64(self.preprocessor.featurizer):
            features, lengths = self.preprocessor(input_signal=audio, length=audio_lengths)
        return features.float(), lengths


@contextlib.contextmanager
def log_in_float64(featurizer: nn.Module):
    """NeMo's FilterbankFeatures with its log guard (the value it adds to, or clamps, the mel
    energies before the log) given as a float64 tensor of one element: by torch's type promotion
    the log and all that follows it in NeMo's own code, the per-feature mean and deviation among
    them, are then computed in float64. The guard's value is the same.

    Why: a mel channel that holds (almost) no energy, as the highest ones of a band-limited
    recording or any of a silent one, sits at log(guard), about -16.6, with a deviation of about
    0.01, and the normalisation divides by it. In float32, the log's last bit (2e-6 at 16) and the
    order of the mean's sum (1e-5 apart between onnxruntime-web's WASM kernels and native x86's)
    came out of it up to 7.6e-4 apart in the features, and 1.2e-3 in the log-probs: 10 of the demo
    base's 95 benchmark clips were over 1e-4 from onnxruntime in Python in the browser. In
    float64 the two runtimes' features are within 7e-6 of each other, most of them to the bit
    (the acoustic part alone, given the same features, is within 2.7e-5), and nearer the exact
    ones than NeMo's own float32 features (docs/export-and-identify.md)."""
    original = featurizer.log_zero_guard_value_fn

    def guard(x: torch.Tensor) -> torch.Tensor:
        return torch.full((1,), float(original(x)), dtype=torch.float64, device=x.device)

    featurizer.log_zero_guard_value_fn = guard
    try:
        yield featurizer
    finally:
        del featurizer.log_zero_guard_value_fn  # the class's own method again


class AcousticModel(nn.Module):
    """Encoder and CTC head: mel features to log-probs and frame lengths."""

    def __init__(self, encoder: nn.Module, ctc_decoder: nn.Module):
        super().__init__()
        self.encoder, self.ctc_decoder = encoder, ctc_decoder

    def forward(self, features: torch.Tensor, feature_lengths: torch.Tensor):
        encoded, lengths = self.encoder.forward_for_export(audio_signal=features, length=feature_lengths)
        log_probs = self.ctc_decoder(encoder_output=encoded)
        return log_probs.float(), lengths


@contextlib.contextmanager
def export_mode(model: nn.Module):
    """NeMo's export set-up: eval, no gradients, no type checks, its export-time module replacements
    and each module's own export preparation (as nemo.core.classes.exportable does)."""
    from nemo.core.classes import typecheck
    from nemo.core.classes.exportable import Exportable
    from nemo.utils.export_utils import replace_for_export

    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    typecheck.set_typecheck_enabled(enabled=False)
    try:
        replace_for_export(model)
        for module in model.modules():
            if isinstance(module, Exportable) and module is not model:
                module._prepare_for_export(noreplace=True)
        with torch.inference_mode(False), torch.no_grad():
            yield model
    finally:
        typecheck.set_typecheck_enabled(enabled=True)


def example_audio(sample_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([round(s * sample_rate) for s in EXAMPLE_SECONDS])
    generator = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(len(lengths), int(lengths.max()), generator=generator)
    return audio, lengths


def export_front_end(preprocessor: nn.Module, sample_rate: int, path: Path) -> None:
    """The preprocessor through the dynamo exporter, batch and length dynamic."""
    audio, lengths = example_audio(sample_rate)
    batch = torch.export.Dim("batch", min=1, max=1024)
    samples = torch.export.Dim("samples", min=sample_rate // 10, max=sample_rate * 3600)
    torch.onnx.export(FrontEnd(preprocessor).eval(), (audio, lengths), str(path), dynamo=True, opset_version=OPSET,
                      input_names=[AUDIO, AUDIO_LENGTHS], output_names=[FEATURES, FEATURE_LENGTHS],
                      dynamic_shapes={"audio": {0: batch, 1: samples}, "audio_lengths": {0: batch}},
                      external_data=False, verbose=False)


def export_acoustic(encoder: nn.Module, ctc_decoder: nn.Module, features: torch.Tensor,
                    feature_lengths: torch.Tensor, path: Path) -> None:
    """Encoder and CTC head through the TorchScript-based exporter, batch and frames dynamic."""
    torch.onnx.export(AcousticModel(encoder, ctc_decoder).eval(), (features, feature_lengths), str(path),
                      dynamo=False, opset_version=OPSET, do_constant_folding=True,
                      input_names=[FEATURES, FEATURE_LENGTHS], output_names=[LOG_PROBS, FRAME_LENGTHS],
                      dynamic_axes={FEATURES: {0: "batch", 2: "feature_frames"}, FEATURE_LENGTHS: {0: "batch"},
                                    LOG_PROBS: {0: "batch", 1: "frames"}, FRAME_LENGTHS: {0: "batch"}})


def join(front_end: Path, acoustic: Path, metadata: dict[str, str]) -> onnx.ModelProto:
    """One graph: the front end's features feed the encoder; `metadata` goes into the model's
    metadata_props (what a runtime needs besides the graph: the tokenizer, the blank, the rate)."""
    first, second = onnx.load(str(front_end)), onnx.load(str(acoustic))
    ir_version = max(first.ir_version, second.ir_version)
    first.ir_version = second.ir_version = ir_version
    first = onnx.compose.add_prefix(first, "front_end/", rename_inputs=False, rename_outputs=False)
    second = onnx.compose.add_prefix(second, "acoustic/", rename_inputs=False, rename_outputs=False)
    joined = onnx.compose.merge_models(first, second, io_map=[(FEATURES, FEATURES), (FEATURE_LENGTHS, FEATURE_LENGTHS)],
                                       outputs=[LOG_PROBS, FRAME_LENGTHS])
    # merge_models lists the default domain once per input model ("" set and unset)
    opsets = {(o.domain or ""): o.version for o in joined.opset_import}
    del joined.opset_import[:]
    joined.opset_import.extend(onnx.helper.make_opsetid(domain, version) for domain, version in sorted(opsets.items()))
    joined.producer_name = "quranft"
    del joined.metadata_props[:]
    for key, value in sorted(metadata.items()):
        joined.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(joined)
    return joined


def preprocessor_fingerprint(model) -> str:
    """sha256 over the preprocessor's config (resolved, canonical JSON), its buffers and
    parameters (the window, the mel filterbank), in state-dict order, and FRONT_END_RECIPE: equal
    fingerprints give the same front end."""
    from omegaconf import OmegaConf

    digest = hashlib.sha256(json.dumps(OmegaConf.to_container(model.cfg.preprocessor, resolve=True),
                                       sort_keys=True, default=str).encode())
    digest.update(FRONT_END_RECIPE.encode())
    for key, tensor in model.preprocessor.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.numpy().tobytes() if tensor.dtype != torch.bfloat16 else tensor.float().numpy().tobytes())
    return digest.hexdigest()


def front_end_fingerprint(path: Path) -> str | None:
    """The fingerprint a front-end file was written with (None if it carries none)."""
    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return props.get(FINGERPRINT)


def write_front_end(model, path: Path) -> str:
    """The front end of a restored model alone, with its fingerprint in the file's metadata, written
    beside `path` and moved there when whole; returns the fingerprint."""
    fingerprint = preprocessor_fingerprint(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with export_mode(model):
        export_front_end(model.preprocessor, int(model.cfg.preprocessor.sample_rate), partial)
    front_end = onnx.load(str(partial))
    front_end.metadata_props.add(key=FINGERPRINT, value=fingerprint)
    onnx.save(front_end, str(partial))
    os.replace(partial, path)
    return fingerprint


def build_graph(model, max_seconds: float, work_dir: Path, metadata: dict[str, str],
                front_end: Path | None = None) -> onnx.ModelProto:
    """The whole graph of a restored model, hybrid or CTC (changed in place: export it last). `front_end`:
    a front-end file (write_front_end) of the same preprocessor, used instead of exporting one."""
    preprocessor_cfg = model.cfg.preprocessor
    sample_rate = int(preprocessor_cfg.sample_rate)
    with export_mode(model):
        pointwise_as_matmul(model.encoder)
        pointwise_as_matmul(ctc_head(model)[0])
        lean_subsampling_masks(model.encoder)
        limit_positions(model.encoder, encoder_frames(model.encoder, max_seconds, float(preprocessor_cfg.window_stride)))
        if front_end is None:
            export_front_end(model.preprocessor, sample_rate, work_dir / "front_end.onnx")
        else:
            shutil.copyfile(front_end, work_dir / "front_end.onnx")
        audio, lengths = example_audio(sample_rate)
        features, feature_lengths = model.preprocessor(input_signal=audio, length=lengths)
        export_acoustic(model.encoder, ctc_head(model)[0], features, feature_lengths, work_dir / "acoustic.onnx")
    return join(work_dir / "front_end.onnx", work_dir / "acoustic.onnx", metadata)
