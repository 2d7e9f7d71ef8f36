"""A model for CTC inference, from a .nemo or an exported .onnx: what the benchmark and identify
both open, with the tokenizer, blank index and frame duration their matchers and segmenter need.

An .onnx opens on onnxruntime and never imports NeMo, Lightning or torch; a .nemo imports NeMo
(about 15 s on this project's 2-core machine) and decodes with its CTC head, greedily. Either
transcribes a recording of any length, in windows when it is longer than one (models.windowed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from quranft.models.memory import release_freed_memory
from quranft.models.windowed import Windowing


@dataclass
class InferenceModel:
    model: Any  # an OnnxModel, or a restored NeMo hybrid model
    tokenizer: Any  # text_to_ids / ids_to_text / unk_id, as the CTC matcher reads them
    blank: int  # the blank index of the model's log-probs (the last one)
    parameters: int  # of what runs: the graph's (preprocessor, encoder, CTC head), or the whole .nemo's
    frame_samples: int  # audio samples per frame of its log-probs (the hop times the subsampling)
    sample_rate: int
    min_confidence: float | None = None  # an export's confidence threshold, chosen when it was exported

    def text(self, log_probs: np.ndarray) -> str:
        """The greedy transcript of log-probs."""
        from quranft.quran.tokenizer import greedy_ids

        return self.tokenizer.ids_to_text(greedy_ids(log_probs, self.blank))

    @property
    def frame_seconds(self) -> float:
        return self.frame_samples / self.sample_rate

    def transcribe(self, audio: np.ndarray, windowing: Windowing = Windowing()) -> tuple[str, np.ndarray]:
        """(greedy transcript, log-probs (frames, vocabulary + blank)) of one 16 kHz mono recording of
        any length: whole when it fits in one of `windowing`'s windows, else in windows."""
        from quranft.models.onnx_model import OnnxModel

        if isinstance(self.model, OnnxModel):
            log_probs = self.model.recording_log_probs(audio, windowing)
            return self.model.text(log_probs), log_probs
        from quranft.models.transcribe import transcribe_samples

        transcript = transcribe_samples(self.model, [audio], keep_log_probs=True, windowing=windowing)[0]
        return transcript.text, transcript.log_probs


def speech_log_probs(model: InferenceModel, audio: np.ndarray, stretches: list[tuple[int, int]],
                     windowing: Windowing = Windowing()) -> np.ndarray:
    """The recording's log-probs with the model hearing only `stretches` ([start, end) samples,
    each start on a frame boundary: data.vad.speech_stretches), each on its own, every other frame
    certain blank: silence and noise between verses neither reach the model nor shift its
    features' normalisation (NeMo's per-feature mean and variance over what it hears)."""
    frames = -(-len(audio) // model.frame_samples)
    out = None
    for start, end in stretches:
        _, heard = model.transcribe(audio[start:end], windowing)
        release_freed_memory()  # the stretch's activations, of its own length (models.memory)
        if out is None:
            out = np.full((frames, heard.shape[1]), -1e4, dtype=np.float32)
            out[:, model.blank] = 0.0
        first = start // model.frame_samples
        count = min(len(heard), frames - first)
        out[first:first + count] = heard[:count]
    if out is None:
        out = np.full((frames, model.blank + 1), -1e4, dtype=np.float32)
        out[:, model.blank] = 0.0
    return out


def load_for_ctc(path: str | Path, threads: int = 0, device: str = "cpu") -> InferenceModel:
    """`path` opened for CTC inference: an .onnx on onnxruntime with `threads` (0: one per core),
    on the CPU; a .nemo restored on `device`, its CTC head decoding greedily."""
    path = Path(path)
    if path.suffix == ".onnx":
        from quranft.models.onnx_model import OnnxModel

        graph = OnnxModel(path, threads)
        return InferenceModel(graph, graph.tokenizer, graph.blank, graph.parameters, graph.frame_samples,
                              graph.sample_rate, graph.min_confidence)
    # oneDNN compiles and keeps kernels for each input shape it meets, up to 1,024 of them: every
    # window length of a long recording added its own, and a real-size model's peak grew from 1,470
    # MB (10 minutes) to 1,602 MB (an hour). 128 keeps a 40 s window's and its neighbours' (the hour:
    # 1,440 MB); 8 made it recompile them all the time (888 s for the hour). Read by oneDNN when it
    # makes its first kernel, so set before the model runs; a value the user set is kept.
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "128")
    from quranft.models import nemo_models
    from quranft.models.transcribe import ctc_head, frame_samples, use_ctc_greedy

    model = nemo_models.restore(path, map_location=device)
    use_ctc_greedy(model)
    return InferenceModel(model, model.tokenizer, ctc_head(model)[0].num_classes_with_blank - 1,
                          sum(p.numel() for p in model.parameters()), frame_samples(model),
                          int(model.cfg.preprocessor.sample_rate))
