"""A model card's "How to use each file": the `.nemo` in NeMo (which head it decodes with), the
exports in onnxruntime (the graph's input and output contract), the browser page, `identify`, what
a confidence means and each file's threshold; and the names the card gives its benchmark corpora
(a Hub id or a corpus name, never a local path).

Everything comes from the leaderboard (each file's benchmark rows and thresholds), the trial's
training metadata (`ctc_only`: which kind of `.nemo` averaging saved) and the config sections the
card's rule passes (`benchmark`: the corpus and the datasets it is built from).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from quranft.config import is_hub_id
from quranft.data.vad import MIN_SPEECH_SECONDS
from quranft.matching.rejection import DEFAULT_THRESHOLD
from quranft.models.onnx_model import EXPORT_FILES, REJECTION, TOKENIZER
from quranft.models.windowed import DEFAULT_CONTEXT_SECONDS, DEFAULT_WINDOW_SECONDS

BROWSER_PAGE = "http://localhost:8000/web/"  # web/, served from the repository root by python -m http.server


def dataset_name(dataset: str) -> str:
    """A dataset as a card names it: its Hub id, or for a local path the name of its folder (or
    file), never the path."""
    return dataset if is_hub_id(dataset) and not Path(dataset).exists() else Path(dataset).name


def benchmark_dataset(board: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, str]:
    """The verse-identification benchmark as a model-index dataset: `type` the Hub id it was built
    from when it is one dataset, else the corpus's name (its folder's); `name` in words, with the
    datasets it was built from."""
    corpus = board["corpus"]
    configured = settings.get("benchmark") or {}
    folder = Path(configured.get("corpus") or corpus["path"]).name
    built = [dataset_name(source["dataset"]) for source in (configured.get("build") or {}).get("sources", [])]
    kind = built[0] if len(built) == 1 else folder
    origin = f", built from {', '.join(built)}" if built else ""
    return {"type": kind, "name": f"Quran verse identification ({folder}{origin}; {corpus['samples']} clips)"}


def export_rows(board: Mapping[str, Any], model: str) -> list[dict[str, Any]]:
    """The model's exports in the leaderboard's deployable table, in its order (fp32, int8, int4)."""
    rows = (board.get("deployable") or {}).get("rows", [])
    return [row for row in rows if row["model"] == model and row["format"] in EXPORT_FILES]


def browser_export(exports: list[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The export the card's examples run: int8, the app's format, where there is one."""
    return next((e for e in exports if e["format"] == "int8"), exports[-1])


def is_ctc_model(training: Mapping[str, Any] | None) -> bool:
    """Whether the model's .nemo is NeMo's CTC model: a trial that trained its CTC head only
    (training.average saves it so); the base model and a hybrid trial are hybrids."""
    return training is not None and bool(training["trial_values"].get("ctc_only"))


def _nemo(row: Mapping[str, Any], board: Mapping[str, Any], training: Mapping[str, Any] | None) -> list[str]:
    restore = ['```python', 'from nemo.collections.asr.models import ASRModel', '',
               'model = ASRModel.restore_from("model.nemo", map_location="cpu")']
    if is_ctc_model(training):
        what = ("`model.nemo` is NeMo's CTC model (`EncDecCTCModelBPE`): the trial trained its CTC head only, and the "
                "file keeps that head alone (the base model's RNNT head, frozen in training and never judged on this "
                "encoder, is left out). `transcribe` decodes with it, greedily, as the benchmark did: it returns the "
                "transcripts the benchmark scored.")
        code = [*restore, 'print(model.transcribe(["recitation.wav"])[0].text)', '```']
    else:
        trained = "as it was pretrained" if training is None else "trained through both heads"
        judged = ("the RNNT head's own figures are in its table below" if _rnnt_judged(board, row["model"])
                  else "the RNNT head was not benchmarked (config key `benchmark.decoders`)")
        what = (f"`model.nemo` is a hybrid RNNT/CTC model (`EncDecHybridRNNTCTCBPEModel`), {trained}. NeMo decodes "
                "a restored hybrid with its RNNT head; every figure of this card but the RNNT table's, its exports "
                "and `identify` are its CTC head's (greedy), so for the transcripts the benchmark scored, switch to "
                f"that head first as below; {judged}.")
        code = [*restore, 'model.change_decoding_strategy(decoder_type="ctc")  # the head the leaderboard ranks',
                'print(model.transcribe(["recitation.wav"])[0].text)', '```']
    return ["", "### NeMo: `model.nemo`", "", what, "", *code, "",
            "`transcribe` takes audio files NeMo reads (WAV or FLAC, one channel) or 16 kHz mono float32 arrays, each "
            "whole: attention's memory grows with the square of a recording's length, so a long recording goes "
            "through `identify` below, in windows."]


def _rnnt_judged(board: Mapping[str, Any], model: str) -> bool:
    section = (board.get("decoders") or {}).get("rnnt") or {}
    return any(r["model"] == model for r in section.get("rows", []))


def _onnx(exports: list[Mapping[str, Any]]) -> list[str]:
    files = ", ".join(f"`export/{EXPORT_FILES[e['format']]}` ({e['format']}, {e['bytes'] / 1e6:.1f} MB)"
                      for e in exports)
    example = EXPORT_FILES[browser_export(exports)["format"]]
    return ["", "### onnxruntime: the exports", "",
            f"The exports ({files}) are each one ONNX graph from raw audio to CTC log-probs (the front end, the "
            "encoder and the CTC head; no RNNT head), with the SentencePiece tokenizer in their metadata "
            f"(`{TOKENIZER}`, base64; also `export/tokenizer.model`). They need onnxruntime only, never NeMo or torch.",
            "", "| | name | type | shape |", "| --- | --- | --- | --- |",
            "| input | `audio` | float32 | [batch, samples]: raw mono audio at 16 kHz, in [-1, 1], zero-padded |",
            "| input | `audio_lengths` | int64 | [batch]: each clip's samples |",
            "| output | `log_probs` | float32 | [batch, frames, vocabulary + 1]: log-probabilities, the blank last |",
            "| output | `frame_lengths` | int64 | [batch]: each clip's frames |",
            "", "```python", "import numpy as np", "import onnxruntime as ort", "",
            f'session = ort.InferenceSession("export/{example}")',
            "audio = ...  # one recording: 16 kHz mono float32, at most the graph's max_seconds",
            'log_probs, frames = session.run(None, {"audio": audio[None, :], '
            '"audio_lengths": np.array([len(audio)], dtype=np.int64)})', "```", "",
            "Greedy decoding takes each frame's most likely token, merges repeats and drops the blank; the "
            "tokenizer writes the pieces as text. A frame is `quranft.frame_samples` samples (metadata; 1,280 = 80 ms "
            "for a FastConformer), and one call takes a clip of at most `quranft.max_seconds` (40 s by default): "
            f"a recording of any length goes in windows of {DEFAULT_WINDOW_SECONDS:g} s with "
            f"{DEFAULT_CONTEXT_SECONDS:g} s of context on each side (`quranft.models.windowed`; `OnnxModel(path)"
            ".recording_log_probs(audio)` in `quranft.models.onnx_model`, numpy and onnxruntime only). The exports' "
            "benchmarks ran one recording a call."]


def _identify(row: Mapping[str, Any], exports: list[Mapping[str, Any]]) -> list[str]:
    model = f"results/{row['model']}"
    shown = f"{model}/export/{EXPORT_FILES[browser_export(exports)['format']]}" if exports else f"{model}/model.nemo"
    lines = ["", "### The verses of a recording: `identify`", "",
             "From this repository, with a `.nemo` or an export (any container ffmpeg decodes, any length, each "
             "verse with its start and end; `--format jsonl|tsv|srt|vtt`, `--stream` as it arrives):", "",
             "```text", f"python -m quranft identify --model {shown} recitation.m4a", "```"]
    if exports:
        lines += ["", "### In the browser", "",
                  "`web/` in this repository is a static page that runs an export in onnxruntime-web (WASM, one "
                  "thread): it resamples a recording to 16 kHz, runs the graph and decodes greedily with the "
                  "tokenizer's pieces. Install its onnxruntime-web once (`scripts/setup_web.sh`: `npm ci` into "
                  "web/node_modules), serve the repository root and open the page with the export's URL:", "",
                  "```text", "python -m http.server 8000",
                  f"{BROWSER_PAGE}?model=/{shown}", "```"]
    return lines


def _confidence(row: Mapping[str, Any], exports: list[Mapping[str, Any]]) -> list[str]:
    thresholds = [f"`model.nemo` {_threshold(row.get('threshold'))}"] + [
        f"`export/{EXPORT_FILES[e['format']]}` {_threshold(e.get('threshold'))}" for e in exports]
    negatives = row.get("negatives") or {}
    refused = (f" On the benchmark's {negatives['samples']} negatives (clips of no verse), "
               f"{negatives['false_accepts']} were named a verse." if negatives.get("samples") else "")
    return ["", "### Confidence and the threshold", "",
            "Each verse found comes with a confidence in [0, 1]: how well the verse's tokens fit the recording's CTC "
            "log-probs where CTC segmentation places them, per frame (the best of its text variants, with and "
            "without the basmala), so that it does not grow with the recording's length. A recording is no verse "
            f"when it holds less than {MIN_SPEECH_SECONDS:g} s of speech (a voice-activity detector) or when the "
            "confidence is under the file's threshold, chosen on the validation clips, never on the benchmark: the "
            "one that best separates the verses predicted right on validation recitations from whatever is "
            "predicted on negatives (silence, noise and the clips played backwards; Youden's J). Thresholds: "
            f"{'; '.join(thresholds)}. An export carries its own in its metadata (`{REJECTION}`, JSON: "
            "`threshold`, `min_speech_seconds`, how it was chosen); `identify` reads it there, and for `model.nemo` "
            f"in the `benchmark.json` beside it; `--min-confidence` overrides it.{refused}"]


def _threshold(value: float | None) -> str:
    return f"{value:g}" if value is not None else f"{DEFAULT_THRESHOLD:g} (the default: none was chosen)"


def usage_section(board: Mapping[str, Any], row: Mapping[str, Any],
                  training: Mapping[str, Any] | None) -> list[str]:
    """The card's "How to use each file" lines for `row` (a leaderboard row) and its exports."""
    exports = export_rows(board, row["model"])
    lines = ["", "## How to use each file", "", f"Beside this card, in `results/{row['model']}/`: `model.nemo`"
             + ("".join(f", `export/{EXPORT_FILES[e['format']]}`" for e in exports)) + "."]
    lines += _nemo(row, board, training)
    if exports:
        lines += _onnx(exports)
    lines += _identify(row, exports)
    lines += _confidence(row, exports)
    return lines
