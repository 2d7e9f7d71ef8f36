"""Export one .nemo for deployment: the ONNX graph (deploy.graph), its quantized copies
(deploy.quantize), the tokenizer, and export.json, with the parity of each format measured on
real clips (deploy.parity).

Into `out_dir`: model.onnx (fp32), model.int8.onnx, model.int4.onnx (as `formats` says),
tokenizer.model and export.json. Each format's confidence threshold (under it a verse is not
reported) is chosen on the parity clips in that format's own runtime (matching.threshold) and
written into its file's metadata, where an app, `identify` and the export's benchmark read it.
Every file is written beside its place first and moved there
when the whole export succeeded, export.json last; an export whose fp32 parity fails writes nothing.
With `front_end` (the base model's, rule export_front_end), the graph reuses it when the model's
preprocessor has its fingerprint, and export.json says whether it did.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnx

from quranft.deploy import graph, parity, quantize
from quranft.matching.threshold import choose_rejection, clip_judge, validation_clips
from quranft.fileio import sha256_file, write_json
from quranft.matching.ctc_matcher import CTCMatcher
from quranft.matching.text_matcher import TextMatcher
from quranft.matching.verse_index import default_index
from quranft.models import nemo_models, onnx_model
from quranft.models.transcribe import ctc_head, frame_samples, use_ctc_greedy
from quranft.data.vad import VoiceActivity
from quranft.models.windowed import Windowing
from quranft.provenance import cpu_name, provenance
from quranft.quran.tokenizer import SentencePieceTokenizer

log = logging.getLogger("quranft")

DEFAULT_FORMATS = ("fp32", "int8")
DEFAULT_MAX_SECONDS = 40.0  # the protocol's clips are at most 30 s
DEFAULT_PARITY_CLIPS = 100


def file_name(fmt: str) -> str:
    return onnx_model.EXPORT_FILES[fmt]


def graph_metadata(model, tokenizer: SentencePieceTokenizer, max_seconds: float, source: Path) -> dict[str, str]:
    """What the file carries for a runtime (models.onnx_model reads it) and for provenance."""
    blank = ctc_head(model)[0].num_classes_with_blank - 1
    if tokenizer.vocab_size != blank:
        raise ValueError(f"{source}: the tokenizer has {tokenizer.vocab_size} pieces, the CTC head {blank} classes "
                         "besides the blank")
    exported = sum(p.numel() for m in (model.preprocessor, model.encoder, ctc_head(model)[0]) for p in m.parameters())
    return {onnx_model.TOKENIZER: base64.b64encode(tokenizer.model_bytes).decode("ascii"),
            onnx_model.BLANK: str(blank), onnx_model.SAMPLE_RATE_KEY: str(int(model.cfg.preprocessor.sample_rate)),
            onnx_model.MAX_SECONDS: f"{max_seconds:g}", onnx_model.PARAMETERS: str(exported),
            onnx_model.FRAME_SAMPLES: str(frame_samples(model)),
            "quranft.source": source.name, "quranft.source_sha256": sha256_file(source)}


def _peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def reusable_front_end(model, front_end: str | Path | None) -> dict[str, Any]:
    """Whether the front-end file fits the model (the same preprocessor fingerprint): what
    export.json records of it, its `file` None when the export makes its own."""
    fingerprint = graph.preprocessor_fingerprint(model)
    if front_end is None:
        return {"file": None, "fingerprint": fingerprint}
    given = graph.front_end_fingerprint(Path(front_end))
    if given != fingerprint:
        log.warning("%s was made from another preprocessor (fingerprint %s, this model's %s): exporting this "
                    "model's own front end", front_end, given, fingerprint)
        return {"file": None, "fingerprint": fingerprint, "not_reused": str(front_end)}
    return {"file": str(front_end), "fingerprint": fingerprint}


def _write_formats(model, metadata: dict[str, str], formats: Sequence[str], max_seconds: float,
                   staging: Path, front_end: str | None) -> dict[str, Any]:
    """The fp32 graph and each quantized copy in `staging`; seconds taken by each step."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    joined = graph.build_graph(model, max_seconds, staging, {**metadata, onnx_model.FORMAT: "fp32"},
                               Path(front_end) if front_end else None)
    onnx.save(joined, str(staging / file_name("fp32")))
    for part in ("front_end.onnx", "acoustic.onnx"):
        (staging / part).unlink()
    seconds["graph"] = round(time.perf_counter() - started, 2)
    for fmt in formats:
        if fmt != "fp32":
            started = time.perf_counter()
            quantize.quantize(fmt, staging / file_name("fp32"), staging / file_name(fmt),
                              {**metadata, onnx_model.FORMAT: fmt})
            seconds[fmt] = round(time.perf_counter() - started, 2)
    return seconds


def write_metadata(path: Path, entries: dict[str, str]) -> None:
    """Set metadata entries of an ONNX file in place (others kept)."""
    model = onnx.load(str(path))
    props = {prop.key: prop.value for prop in model.metadata_props} | entries
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(path))


def with_rejections(staging: Path, formats: Sequence[str], graphs: dict[str, Any], manifest: str | Path | None,
                    count: int, windowing: Windowing) -> dict[str, Any]:
    """Each format's Rejection chosen on the manifest's first `count` clips by its own graph, and
    written into its file (onnx_model.REJECTION); none without a manifest."""
    clips = validation_clips(manifest, count) if manifest is not None else []
    if not clips:
        return {}
    index, text_matcher, vad = default_index(), TextMatcher(), VoiceActivity()
    chosen = {}
    for fmt in formats:
        model = graphs[fmt]

        def transcribe(audio, model=model):
            log_probs = model.recording_log_probs(audio, windowing)
            return model.text(log_probs), log_probs

        judge = clip_judge(transcribe, "ctc", index, text_matcher, CTCMatcher(model.tokenizer, model.blank))
        rejection = choose_rejection(judge, clips, index, text_matcher, vad).as_dict()
        write_metadata(staging / file_name(fmt), {onnx_model.REJECTION: json.dumps(rejection)})
        chosen[fmt] = rejection
    return chosen


def export_model(model_path: str | Path, out_dir: str | Path, formats: Sequence[str] = DEFAULT_FORMATS,
                 parity_manifest: str | Path | None = None, parity_clips: int = DEFAULT_PARITY_CLIPS,
                 max_seconds: float = DEFAULT_MAX_SECONDS, threads: int = 0,
                 front_end: str | Path | None = None, clips_source: str | None = None) -> dict[str, Any]:
    """Export `model_path` into `out_dir` (see the module's docstring); returns export.json's
    content. Parity is measured on the first `parity_clips` clips of `parity_manifest`, which
    must name some (parity.clips_manifest makes one); `clips_source` says what they are, in words,
    in the record (default: the manifest's path)."""
    model_path, out_dir = Path(model_path), Path(out_dir)
    unknown = sorted(set(formats) - set(quantize.FORMATS))
    if unknown or not formats:
        raise ValueError(f"export formats must be among {', '.join(quantize.FORMATS)}: got {list(formats)}")
    if parity_manifest is None:
        raise parity.NoParityClips(f"exporting {model_path}: no clips to compare the export with the .nemo on "
                                   "(a parity manifest; python -m quranft export: --clips)")
    clips = parity.parity_clips(parity_manifest, parity_clips)
    if not clips:
        raise parity.NoParityClips(f"{parity_manifest}: no clip to compare the export of {model_path} with the .nemo "
                                   "on (the manifest has no rows)")
    started = time.perf_counter()
    tokenizer = SentencePieceTokenizer.from_nemo(model_path)
    model = nemo_models.restore(model_path, map_location="cpu")
    use_ctc_greedy(model)
    windowing = Windowing().at_most(max_seconds)  # the graph's windows, for a clip longer than it takes
    reference = parity.transcribe_clips(model, clips, windowing)  # before the export changes the model
    parity.compared(clips, reference)
    metadata = graph_metadata(model, tokenizer, max_seconds, model_path)
    reused = reusable_front_end(model, front_end)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=out_dir))
    try:
        seconds = _write_formats(model, metadata, formats, max_seconds, staging, reused["file"])
        graphs = {fmt: onnx_model.OnnxModel(staging / file_name(fmt), threads) for fmt in ("fp32", *formats)}
        started_parity = time.perf_counter()
        agreement = {"source": clips_source or f"the manifest {parity_manifest}",
                     **parity.measure(reference, graphs, clips, windowing)}
        seconds["parity"] = round(time.perf_counter() - started_parity, 2)
        started_threshold = time.perf_counter()
        agreement["rejection"] = with_rejections(staging, formats, graphs, parity_manifest, parity_clips, windowing)
        seconds["threshold"] = round(time.perf_counter() - started_threshold, 2)
        (staging / "tokenizer.model").write_bytes(tokenizer.model_bytes)
        if "fp32" not in formats:  # the quantized copies are made from it; kept only when asked for
            (staging / file_name("fp32")).unlink()
        result = _record(model_path, out_dir, formats, staging, metadata, agreement, seconds, started, max_seconds,
                         reused)
        for name in [*(file_name(f) for f in formats), "tokenizer.model"]:
            os.replace(staging / name, out_dir / name)
        write_json(out_dir / "export.json", result)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result


def _record(model_path: Path, out_dir: Path, formats: Sequence[str], staging: Path, metadata: dict[str, str],
            agreement: dict[str, Any], seconds: dict[str, float], started: float, max_seconds: float,
            front_end: dict[str, Any]) -> dict[str, Any]:
    import onnxruntime
    import torch

    files = {fmt: {"file": str(out_dir / file_name(fmt)), "bytes": (staging / file_name(fmt)).stat().st_size,
                   "sha256": sha256_file(staging / file_name(fmt)), "quantization": quantize.settings(fmt)}
             for fmt in formats}
    return {
        "model": {"file": str(model_path), "bytes": model_path.stat().st_size,
                  "sha256": metadata["quranft.source_sha256"]},
        "formats": files,
        "graph": {"inputs": {graph.AUDIO: "float32 [batch, samples], 16 kHz mono", graph.AUDIO_LENGTHS: "int64 [batch]"},
                  "outputs": {graph.LOG_PROBS: "float32 [batch, frames, vocabulary + blank]",
                              graph.FRAME_LENGTHS: "int64 [batch]"},
                  "blank": int(metadata[onnx_model.BLANK]), "max_seconds": max_seconds,
                  "parameters": int(metadata[onnx_model.PARAMETERS]), "opset": graph.OPSET,
                  "exporters": {"front_end": f"torch.onnx.export(dynamo=True) {torch.__version__}",
                                "encoder_and_ctc_head": f"torch.onnx.export(dynamo=False) {torch.__version__}",
                                "joined_with": "onnx.compose.merge_models"},
                  "single_file": True,
                  # the base model's front end (rule export_front_end) where the preprocessor is the same
                  "front_end": {"reused": front_end["file"], "preprocessor_fingerprint": front_end["fingerprint"],
                                **({"not_reused": front_end["not_reused"]} if "not_reused" in front_end else {})}},
        "parity": agreement,
        "seconds": {**seconds, "total": round(time.perf_counter() - started, 2)},
        "peak_memory_mb": round(_peak_memory_mb(), 1),
        "machine": cpu_name(),
        "onnxruntime": onnxruntime.__version__,
        "provenance": provenance(),
    }
