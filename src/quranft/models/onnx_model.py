"""An exported model (quranft.deploy's ONNX graph) run with onnxruntime, on the CPU.

Raw 16 kHz mono audio to CTC log-probs, and greedy CTC transcripts decoded with the model's
SentencePiece tokenizer, which the file carries in its metadata with everything else a runtime
needs (the blank index, the sample rate, the longest clip the graph takes, the samples per output
frame). A recording of any length goes through the graph in windows (models.windowed). Imports
onnxruntime, numpy and sentencepiece only: what an app that ships the model needs, never NeMo,
Lightning or torch.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from quranft.errors import QuranftError
from quranft.models.windowed import Windowing, windowed_log_probs
from quranft.quran.tokenizer import SentencePieceTokenizer, greedy_ids

# metadata_props keys of an exported graph
TOKENIZER, BLANK, SAMPLE_RATE_KEY, MAX_SECONDS, FORMAT, PARAMETERS, FRAME_SAMPLES = (
    "quranft.tokenizer", "quranft.blank", "quranft.sample_rate", "quranft.max_seconds", "quranft.format",
    "quranft.parameters", "quranft.frame_samples")
REJECTION = "quranft.rejection"  # JSON: the confidence threshold, chosen on validation clips at export
REQUIRED = (TOKENIZER, BLANK, SAMPLE_RATE_KEY, MAX_SECONDS)
# Samples per output frame of the exports made before FRAME_SAMPLES was recorded: every one was a
# FastConformer's (10 ms hop, subsampled 8 times) at 16 kHz.
FASTCONFORMER_FRAME_SAMPLES = 1280
# An export's files in results/<model>/export/, by format (config export.formats)
EXPORT_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx", "int4": "model.int4.onnx"}


class OnnxModelError(QuranftError, ValueError):
    """An .onnx file that is not a quranft export, or a clip it cannot take; the message names the file."""


class ClipTooLong(OnnxModelError):
    """A clip longer than the export's max_seconds (its positional table ends there)."""


class OnnxModel:
    """One exported graph in an onnxruntime session: `threads` intra-op threads (0: onnxruntime's
    default, one per core)."""

    def __init__(self, path: str | Path, threads: int = 0):
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise OnnxModelError(f"{self.path}: no such file")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for a bad file
            raise OnnxModelError(f"{self.path}: onnxruntime cannot load it ({error})") from error
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        missing = [key for key in REQUIRED if key not in self.metadata]
        if missing:
            raise OnnxModelError(f"{self.path}: not a quranft export (no {', '.join(missing)} in its metadata)")
        self.tokenizer = SentencePieceTokenizer(base64.b64decode(self.metadata[TOKENIZER]))
        self.blank = int(self.metadata[BLANK])
        self.sample_rate = int(self.metadata[SAMPLE_RATE_KEY])
        self.max_seconds = float(self.metadata[MAX_SECONDS])
        self.format = self.metadata.get(FORMAT, "fp32")
        self.parameters = int(self.metadata.get(PARAMETERS, 0))
        self.frame_samples = int(self.metadata.get(FRAME_SAMPLES, FASTCONFORMER_FRAME_SAMPLES))
        self.rejection = json.loads(self.metadata[REJECTION]) if REJECTION in self.metadata else None
        self.min_confidence = None if self.rejection is None else float(self.rejection["threshold"])
        self.threads = threads

    def log_probs(self, audios: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Each clip's log-probs (frames, vocabulary + blank): the clips of an fp32 graph run as one
        padded batch, those of a quantized one each alone. Dynamic quantization computes its
        activations' scales over the whole input, padding and the other clips included, so that a
        clip's int8 log-probs moved by up to 1.7 in a padded batch of four demo clips, and 23 of
        their frames took another best class (the demo base's export; tests/test_export.py):
        alone, a clip gets what an app that identifies one recording gets."""
        if self.format != "fp32":
            return [self._run([audio])[0] for audio in audios]
        return self._run(audios)

    def _run(self, audios: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The clips as one zero-padded batch through the graph."""
        lengths = np.array([len(audio) for audio in audios], dtype=np.int64)
        longest = int(lengths.max())
        if longest > self.max_seconds * self.sample_rate:
            raise ClipTooLong(f"{longest / self.sample_rate:.1f} s of audio: {self.path} takes clips of at most "
                              f"{self.max_seconds:g} s (export.max_seconds)")
        batch = np.zeros((len(audios), longest), dtype=np.float32)
        for row, audio in enumerate(audios):
            batch[row, : len(audio)] = audio
        log_probs, frames = self.session.run(None, {"audio": batch, "audio_lengths": lengths})
        return [log_probs[row, : int(frames[row])] for row in range(len(audios))]

    def recording_log_probs(self, audio: np.ndarray, windowing: Windowing = Windowing()) -> np.ndarray:
        """A recording's log-probs (frames, vocabulary + blank), whatever its length: in windows of at
        most the export's max_seconds; `log_probs([audio])[0]` itself when it fits in one."""
        return windowed_log_probs(self.log_probs, audio, self.frame_samples, self.sample_rate,
                                  windowing.at_most(self.max_seconds))

    def text(self, log_probs: np.ndarray) -> str:
        return self.tokenizer.ids_to_text(greedy_ids(log_probs, self.blank))
