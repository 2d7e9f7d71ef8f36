"""A model for CTC inference, from a .nemo or an exported .onnx: what the benchmark and identify
both open, with the tokenizer and blank index their CTC matcher needs.

An .onnx opens on onnxruntime and never imports NeMo, Lightning or torch; a .nemo imports NeMo
(about 15 s on this project's 2-core machine) and decodes with its CTC head, greedily.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class InferenceModel:
    model: Any  # an OnnxModel, or a restored NeMo hybrid model
    tokenizer: Any  # text_to_ids / ids_to_text / unk_id, as the CTC matcher reads them
    blank: int  # the blank index of the model's log-probs (the last one)
    parameters: int  # of what runs: the graph's (preprocessor, encoder, CTC head), or the whole .nemo's


def load_for_ctc(path: str | Path, threads: int = 0, device: str = "cpu") -> InferenceModel:
    """`path` opened for CTC inference: an .onnx on onnxruntime with `threads` (0: one per core),
    on the CPU; a .nemo restored on `device`, its CTC head decoding greedily."""
    path = Path(path)
    if path.suffix == ".onnx":
        from quranft.models.onnx_model import OnnxModel

        graph = OnnxModel(path, threads)
        return InferenceModel(graph, graph.tokenizer, graph.blank, graph.parameters)
    from quranft.models import nemo_models
    from quranft.models.transcribe import use_ctc_greedy

    model = nemo_models.restore(path, map_location=device)
    use_ctc_greedy(model)
    return InferenceModel(model, model.tokenizer, model.ctc_decoder.num_classes_with_blank - 1,
                          sum(p.numel() for p in model.parameters()))
