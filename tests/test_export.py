"""The export stage on the committed demo base model (real exports, real clips): one self-contained
graph from raw audio to CTC log-probs, its parity with the .nemo, the quantized copies' agreement,
the front end against NeMo's preprocessor, and what the files carry."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from conftest import DEMO, small_corpus
from quranft.data.audio import load_audio
from quranft.deploy import graph, parity
from quranft.deploy.export import export_model
from quranft.models.onnx_model import ClipTooLong, OnnxModel, OnnxModelError
from quranft.models.transcribe import Transcript

pytestmark = pytest.mark.slow

BASE = DEMO / "base_model.nemo"


@pytest.fixture(scope="module")
def exported(demo_base_export) -> Path:
    return demo_base_export[0]


@pytest.fixture(scope="module")
def parity_manifest(demo_base_export) -> Path:
    return demo_base_export[1]


@pytest.fixture(scope="module")
def reference():
    from quranft.models import nemo_models
    from quranft.models.transcribe import use_ctc_greedy

    model = nemo_models.restore(BASE)
    use_ctc_greedy(model)
    return model


def test_the_export_writes_each_format_as_one_file_and_records_it(exported):
    assert sorted(p.name for p in exported.iterdir()) == [
        "export.json", "model.int4.onnx", "model.int8.onnx", "model.onnx", "tokenizer.model"]
    record = json.loads((exported / "export.json").read_text(encoding="utf-8"))
    for fmt, name in (("fp32", "model.onnx"), ("int8", "model.int8.onnx"), ("int4", "model.int4.onnx")):
        assert record["formats"][fmt]["bytes"] == (exported / name).stat().st_size
        model = onnx.load(str(exported / name), load_external_data=False)
        # self-contained: no tensor lives in an external .onnx.data file
        assert not [t.name for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
        assert [i.name for i in model.graph.input] == ["audio", "audio_lengths"]
        assert [o.name for o in model.graph.output] == ["log_probs", "frame_lengths"]
        metadata = {p.key: p.value for p in model.metadata_props}
        assert metadata["quranft.format"] == fmt
        assert base64.b64decode(metadata["quranft.tokenizer"]) == (exported / "tokenizer.model").read_bytes()
    # no RNNT decoder or joint in the graph: fewer parameters than the .nemo's 1,806,018
    assert record["graph"]["parameters"] == 1_747_777 and record["graph"]["blank"] == 128
    assert record["formats"]["int8"]["bytes"] < 0.5 * record["formats"]["fp32"]["bytes"]
    assert record["formats"]["int4"]["bytes"] < record["formats"]["int8"]["bytes"]


def test_fp32_parity_with_the_nemo_on_real_clips(exported, parity_manifest, reference):
    record = json.loads((exported / "export.json").read_text(encoding="utf-8"))["parity"]
    assert record["clips"] == 8 and record["fp32"]["identical_transcripts"] == 8 and record["fp32"]["passed"]
    assert record["fp32"]["largest_log_prob_difference"] < 1e-3
    # the same, measured here: the graph's log-probs against PyTorch's, clip by clip
    model = OnnxModel(exported / "model.onnx", threads=2)
    clips = parity.parity_clips(parity_manifest, 8)
    ours, theirs = parity.transcribe_clips(model, clips), parity.transcribe_clips(reference, clips)
    for mine, nemo in zip(ours, theirs):
        assert mine.text == nemo.text and mine.log_probs.shape == nemo.log_probs.shape
        assert np.abs(mine.log_probs - nemo.log_probs).max() < 1e-3


def test_the_quantized_copies_agree_with_the_nemo_within_bounds(exported):
    record = json.loads((exported / "export.json").read_text(encoding="utf-8"))["parity"]
    # the 1.8M-parameter demo model is far more sensitive to 8-bit weights than a large one
    assert record["int8"]["wer_against_nemo"] <= 0.35 and record["int8"]["identical_transcripts"] >= 2
    assert record["int4"]["wer_against_nemo"] <= 0.8
    for fmt in ("int8", "int4"):
        agreement = record[fmt]
        assert agreement["identical_transcripts"] + len(agreement["differing_clips"]) == 8


def test_the_subsampling_masks_only_before_convolutions_that_mix_frames_and_gives_nemos_output(reference):
    """graph.LeanMaskedConvs on the demo base's subsampling (NeMo's MaskedConvSequential), a
    zero-padded batch of three lengths: the same output and lengths as NeMo's, to the bit, with
    four masks instead of nine (before the three convolutions of three frames, and at the end)."""
    import copy

    subsampling = copy.deepcopy(reference.encoder.pre_encode)
    assert type(subsampling.conv).__name__ == "MaskedConvSequential"
    host = torch.nn.Module()
    host.pre_encode = subsampling
    assert graph.lean_subsampling_masks(host) and isinstance(subsampling.conv, graph.LeanMaskedConvs)
    assert [graph.mixes_frames(layer) for layer in subsampling.conv] == [True, False, True, False, False, True,
                                                                          False, False]
    features = torch.randn(3, 237, reference.cfg.preprocessor.features, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([237, 150, 31])
    with torch.no_grad():
        expected, expected_lengths = reference.encoder.pre_encode(features, lengths)
        lean, lean_lengths = subsampling(features, lengths)
    assert torch.equal(lean, expected) and torch.equal(lean_lengths, expected_lengths)
    assert lean_lengths.tolist() == [30, 19, 4]


def test_the_exported_subsampling_convolutions_feed_their_relu_which_onnxruntime_fuses(exported, tmp_path):
    """In the export, each subsampling ReLU takes its convolution's output directly (no mask in
    between), so that onnxruntime's optimisation, the browser's as Python's, fuses the three
    pairs (FusedConv); the masks broadcast over channels and features (no Expand to the
    activations' shape)."""
    import onnxruntime as ort

    model = onnx.load(str(exported / "model.onnx"))
    subsampling = [node for node in model.graph.node if "/pre_encode/" in node.name]
    producer = {output: node for node in subsampling for output in node.output}
    relus = [node for node in subsampling if node.op_type == "Relu"]
    assert len(relus) == 3 and all(producer[relu.input[0]].op_type == "Conv" for relu in relus)
    assert not [node for node in subsampling if node.op_type == "Expand"]
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    ort.InferenceSession(str(exported / "model.int8.onnx"), options, providers=["CPUExecutionProvider"])
    optimised = [node for node in onnx.load(str(tmp_path / "optimised.onnx")).graph.node if "/pre_encode/" in node.name]
    assert sorted(node.op_type for node in optimised if "Conv" in node.op_type) == ["Conv", "Conv", "FusedConv",
                                                                                     "FusedConv", "FusedConv"]
    assert not [node for node in optimised if node.op_type == "Relu"]


@pytest.fixture(scope="module")
def front_end(tmp_path_factory) -> Path:
    """The demo base's front end alone, as rule export_front_end writes it."""
    from quranft.models import nemo_models

    path = tmp_path_factory.mktemp("front-end") / "front_end.onnx"
    graph.write_front_end(nemo_models.restore(BASE), path)
    return path


def test_the_front_end_equals_nemos_preprocessor_on_padded_batches(front_end, reference):
    """The front end alone, batched with zero padding, on clips of 0.4 to 9.5 s; it carries the
    fingerprint of the preprocessor it was made from."""
    import onnxruntime as ort

    assert graph.front_end_fingerprint(front_end) == graph.preprocessor_fingerprint(reference)
    assert [p.name for p in front_end.parent.iterdir()] == ["front_end.onnx"]  # no partial file left
    audios = [load_audio(DEMO / "benchmark" / name) for name in ("user_103_003.m4a", "retasy_001_002.mp3")]
    audios += [audios[1][:6400], audios[0][:40000]]
    lengths = np.array([len(a) for a in audios])
    batch = np.zeros((len(audios), lengths.max()), np.float32)
    for row, audio in enumerate(audios):
        batch[row, : len(audio)] = audio
    session = ort.InferenceSession(str(front_end), providers=["CPUExecutionProvider"])
    features, frames = session.run(None, {"audio": batch, "audio_lengths": lengths})
    with torch.no_grad():
        expected, expected_frames = reference.preprocessor(input_signal=torch.from_numpy(batch),
                                                           length=torch.from_numpy(lengths))
    assert frames.tolist() == expected_frames.tolist() == [len(a) // 160 for a in audios]  # 10 ms hop
    for row, count in enumerate(frames):
        assert np.abs(features[row, :, :count] - expected[row, :, :count].numpy()).max() < 1e-3
    # its log and normalisation in float64, its features float32 (graph.log_in_float64)
    inferred = onnx.shape_inference.infer_shapes(onnx.load(str(front_end)))
    types = {v.name: v.type.tensor_type.elem_type for v in [*inferred.graph.value_info, *inferred.graph.output]}
    log = next(node for node in inferred.graph.node if node.op_type == "Log")
    assert (types[log.input[0]], types["features"]) == (onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT)


def test_an_export_reuses_the_front_end_of_the_same_preprocessor(front_end, exported, parity_manifest, tmp_path):
    """With the base model's front end, the export joins that file instead of exporting its own
    (what every export of the workflow does): the same graph, to the bit, as the export that made
    its own, and its parity recorded as always."""
    record = export_model(BASE, tmp_path / "export", ["fp32"], parity_manifest, parity_clips=8, threads=2,
                          front_end=front_end)
    assert record["graph"]["front_end"] == {"reused": str(front_end),
                                            "preprocessor_fingerprint": graph.front_end_fingerprint(front_end)}
    assert record["parity"]["fp32"]["identical_transcripts"] == 8 and record["parity"]["fp32"]["passed"]
    own = json.loads((exported / "export.json").read_text(encoding="utf-8"))["graph"]["front_end"]
    assert own["reused"] is None and own["preprocessor_fingerprint"] == record["graph"]["front_end"][
        "preprocessor_fingerprint"]
    reused, made = OnnxModel(tmp_path / "export" / "model.onnx", threads=2), OnnxModel(exported / "model.onnx", threads=2)
    audios = [load_audio(DEMO / "benchmark" / name) for name in ("user_103_003.m4a", "multi_114_001_006.wav")]
    for mine, theirs in zip(reused.log_probs(audios), made.log_probs(audios)):
        assert np.array_equal(mine, theirs)


def test_a_model_of_another_preprocessor_makes_its_own_front_end(front_end, caplog):
    """Another preprocessor config, or the same config with other filterbank values: not reused."""
    from omegaconf import open_dict

    from quranft.deploy.export import reusable_front_end
    from quranft.models import nemo_models

    model = nemo_models.restore(BASE)
    assert reusable_front_end(model, front_end)["file"] == str(front_end)
    with open_dict(model.cfg):
        model.cfg.preprocessor.log_zero_guard_value = 1e-5
    with caplog.at_level(logging.WARNING, logger="quranft"):
        decision = reusable_front_end(model, front_end)
    assert decision["file"] is None and decision["not_reused"] == str(front_end)
    assert f"{front_end} was made from another preprocessor" in caplog.text
    model = nemo_models.restore(BASE)
    with torch.no_grad():
        model.preprocessor.featurizer.fb[0, 1, 1] += 1e-3
    assert reusable_front_end(model, front_end)["file"] is None


def test_a_graph_that_hears_otherwise_fails_parity_naming_the_clips(exported, parity_manifest):
    clips = parity.parity_clips(parity_manifest, 3)
    model = OnnxModel(exported / "model.onnx", threads=2)
    reference = parity.transcribe_clips(model, clips)
    reference[1] = Transcript(text=reference[1].text + " x", log_probs=reference[1].log_probs)
    with pytest.raises(parity.ExportParityError, match="differ on 1 of 3 clips \\(retasy_001_002.mp3\\)"):
        parity.measure(reference, {"fp32": model}, clips)


def test_a_failed_export_leaves_the_old_one_in_place(exported, parity_manifest, tmp_path, monkeypatch):
    out = tmp_path / "export"
    out.mkdir()
    (out / "model.onnx").write_bytes(b"the old export")

    def refuse(*args, **kwargs):
        raise parity.ExportParityError("planted")

    monkeypatch.setattr(parity, "measure", refuse)
    with pytest.raises(parity.ExportParityError):
        export_model(BASE, out, ["fp32", "int8"], parity_manifest, parity_clips=2)
    assert [p.name for p in out.iterdir()] == ["model.onnx"] and (out / "model.onnx").read_bytes() == b"the old export"


def test_the_runtime_refuses_files_it_cannot_use(exported, tmp_path):
    (tmp_path / "plain.onnx").write_bytes(onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])).SerializeToString())
    with pytest.raises(OnnxModelError, match="plain.onnx: not a quranft export"):
        OnnxModel(tmp_path / "plain.onnx")
    with pytest.raises(OnnxModelError, match="missing.onnx: no such file"):
        OnnxModel(tmp_path / "missing.onnx")
    model = OnnxModel(exported / "model.int8.onnx")
    with pytest.raises(ClipTooLong, match="at most 40 s"):
        model.log_probs([np.zeros(16000 * 41, np.float32)])


def test_quantizing_leaves_the_root_logger_as_it_was(exported, tmp_path):
    from quranft.deploy.quantize import quantize

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    try:
        quantize("int8", exported / "model.onnx", tmp_path / "q.onnx", {"quranft.format": "int8"})
        assert root.level == logging.INFO
    finally:
        root.setLevel(level)


BATCH = ["user_103_003.m4a", "retasy_001_002.mp3", "multi_114_001_006.wav", "negative_white_noise.mp3"]


def run_padded(path: Path, audios: list[np.ndarray]) -> list[np.ndarray]:
    """The graph's own run of the clips as one zero-padded batch, as a runtime would batch them."""
    import onnxruntime as ort

    lengths = np.array([len(a) for a in audios], dtype=np.int64)
    batch = np.zeros((len(audios), lengths.max()), np.float32)
    for row, audio in enumerate(audios):
        batch[row, : len(audio)] = audio
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    log_probs, frames = session.run(None, {"audio": batch, "audio_lengths": lengths})
    return [log_probs[row, : int(frames[row])] for row in range(len(audios))]


def test_a_clips_int8_log_probs_change_with_its_batch_and_the_runtime_runs_each_clip_alone(exported):
    """Dynamic quantization scales the activations over the whole input: in a padded batch of four
    real clips, each clip's int8 log-probs move (and best classes change), where fp32's stay within
    padding's rounding; OnnxModel therefore runs a quantized graph's clips one by one, each
    exactly as alone."""
    audios = [load_audio(DEMO / "benchmark" / name) for name in BATCH]
    for fmt, name in (("fp32", "model.onnx"), ("int8", "model.int8.onnx")):
        model = OnnxModel(exported / name, threads=1)
        alone = [model.log_probs([audio])[0] for audio in audios]
        padded = run_padded(exported / name, audios)
        moved = [float(np.abs(a - p).max()) for a, p in zip(alone, padded)]
        if fmt == "fp32":
            assert max(moved) < 1e-4
        else:
            assert min(moved) > 0.1 and max(moved) > 1.0
            assert sum(int((a.argmax(-1) != p.argmax(-1)).sum()) for a, p in zip(alone, padded)) > 0
        for mine, own in zip(model.log_probs(audios), alone):
            assert np.array_equal(mine, own) if fmt == "int8" else np.abs(mine - own).max() < 1e-4


def test_the_benchmark_of_an_int8_export_scores_each_clip_as_it_is_alone(exported, tmp_path):
    """The benchmark's log-probs of every clip are, to the bit, the clip's own run alone."""
    from quranft.evaluation.benchmark import run_benchmark

    corpus = small_corpus(tmp_path / "corpus", files=set(BATCH))
    chosen = json.loads((corpus / "manifest.json").read_text(encoding="utf-8"))["samples"]
    run_benchmark(exported / "model.int8.onnx", corpus, tmp_path / "int8.json", "base", batch_size=None,
                  log_probs_path=tmp_path / "log_probs.npz")
    scored = np.load(tmp_path / "log_probs.npz")
    model = OnnxModel(exported / "model.int8.onnx", threads=torch.get_num_threads())
    assert sorted(scored.files) == sorted(s["id"] for s in chosen)
    for sample in chosen:
        alone = model.log_probs([load_audio(corpus / sample["file"])])[0]
        assert np.array_equal(scored[sample["id"]], alone), sample["id"]


def test_an_export_run_on_its_own_compares_the_clips_given_and_says_which(tmp_path, caplog):
    """`python -m quranft export` outside the workflow: parity on the --clips (audio files here;
    by default the demo's validation clips, tests/test_parity_clips.py), recorded with their ids."""
    from quranft.cli import main

    files = [str(DEMO / "benchmark" / name) for name in ("user_103_003.m4a", "retasy_001_002.mp3")]
    with caplog.at_level(logging.INFO, logger="quranft"):
        assert main(["export", "--model", str(BASE), "--out-dir", str(tmp_path / "export"), "--formats", "fp32",
                     "--clips", *files, "--threads", "2"]) == 0
    record = json.loads((tmp_path / "export" / "export.json").read_text(encoding="utf-8"))["parity"]
    assert (record["clips"], record["ids"], record["source"]) == (2, ["user_103_003.m4a", "retasy_001_002.mp3"],
                                                                  "2 audio files")
    assert record["fp32"]["identical_transcripts"] == 2 and record["fp32"]["passed"]
    assert record["rejection"] == {}  # clips without text: no threshold chosen on them
    assert "parity on 2 clips, 2 audio files" in caplog.text
    assert "model.onnx, 8.4 MB, 2/2 transcripts as the .nemo's" in caplog.text
