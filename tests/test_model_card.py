"""The model card's "How to use each file" and the names its model-index gives the benchmarks, on a
leaderboard made by the CLI from constructed benchmarks (a CTC-only trial with two exports, the
hybrid base)."""

from __future__ import annotations

import json

import yaml

from quranft.cli import main
from test_leaderboard import ALL_RIGHT, BASE_RIGHT, benchmark, hybrid
from test_ship import HUB_SETTINGS, trial_files

EXPORT_BYTES = {"fp32": 8_496_973, "int8": 3_927_820}


def with_rejection(result: dict, file: str, bytes_: int, threshold: float) -> dict:
    """A benchmark as run_benchmark writes it, with its file, size and chosen threshold."""
    return {**result, "model": {**result["model"], "file": file, "bytes": bytes_},
            "rejection": {"threshold": threshold, "min_speech_seconds": 0.25, "chosen_on": {}}}


def board_with_exports(tmp_path, heads: bool = False) -> str:
    """The leaderboard of the base and v1, v1 with fp32 and int8 exports (thresholds 0.465, 0.465, 0.48)."""
    results = tmp_path / "results"
    made = {"base": (hybrid("base", BASE_RIGHT, BASE_RIGHT) if heads else benchmark("base", BASE_RIGHT), 0.5),
            "v1": (benchmark("v1", ALL_RIGHT), 0.465)}
    files = []
    for name, (result, threshold) in made.items():
        path = results / name / "benchmark.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(with_rejection(result, f"results/{name}/model.nemo", 7_843_840, threshold)),
                        encoding="utf-8")
        files.append(f"{name}={path}")
    exports = []
    for fmt, file, threshold in (("fp32", "model.onnx", 0.465), ("int8", "model.int8.onnx", 0.48)):
        path = results / "v1" / "export" / f"benchmark.{fmt}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(with_rejection(benchmark("v1", ALL_RIGHT), f"results/v1/export/{file}",
                                                  EXPORT_BYTES[fmt], threshold)), encoding="utf-8")
        exports.append(f"v1:{fmt}={path}")
    out = results / "leaderboard"
    assert main(["leaderboard", "--benchmarks", *files, "--exports", *exports, "--markdown", f"{out}.md",
                 "--json", f"{out}.json", "--png", f"{out}.png"]) == 0
    return f"{out}.json"


def card(tmp_path, board: str, model: str, settings: dict, *trial: str) -> tuple[dict, str]:
    settings_file = tmp_path / f"settings_{model}.json"
    settings_file.write_text(json.dumps(settings), encoding="utf-8")
    out = tmp_path / "cards" / model / "MODEL_CARD.md"
    assert main(["model-card", "--settings", str(settings_file), "--leaderboard", board, "--model", model, *trial,
                 "--output", str(out)]) == 0
    header, body = out.read_text(encoding="utf-8")[4:].split("\n---\n", 1)
    return yaml.safe_load(header), body


def test_a_ctc_only_trials_card_tells_how_to_run_its_nemo_its_exports_and_the_browser_page(tmp_path):
    board = board_with_exports(tmp_path)
    local_source = tmp_path / "everyayah_local"
    local_source.mkdir()
    settings = {**HUB_SETTINGS, "benchmark": {
        "corpus": str(tmp_path / "results" / "benchmark_corpus"),
        "build": {"sources": [{"name": "retasy", "dataset": "RetaSy/quranic_audio_dataset"},
                              {"name": "everyayah", "dataset": str(local_source)}]}}}
    training, averaging = trial_files(tmp_path)  # v1: ctc_only
    meta, body = card(tmp_path, board, "v1", settings, "--training-metadata", training, "--averaging", averaging)

    assert meta["tags"][-1] == "CTC" and "hybrid-rnnt-ctc" not in meta["tags"]
    [result] = meta["model-index"][0]["results"]
    assert result["dataset"] == {"type": "benchmark_corpus", "name": "Quran verse identification (benchmark_corpus, "
                                 "built from RetaSy/quranic_audio_dataset, everyayah_local; 8 clips)"}
    assert str(tmp_path) not in yaml.safe_dump(meta["model-index"])  # no local path
    assert "a NeMo FastConformer CTC model (the CTC path of its hybrid RNNT/CTC base, the only head the trial " \
           "trained) for Arabic speech recognition." in body

    usage = body.split("\n## How to use each file\n")[1].split("\n## License and credits\n")[0]
    assert "Beside this card, in `results/v1/`: `model.nemo`, `export/model.onnx`, `export/model.int8.onnx`." in usage
    assert ("`model.nemo` is NeMo's CTC model (`EncDecCTCModelBPE`): the trial trained its CTC head only, and the "
            "file keeps that head alone") in usage
    assert ('model = ASRModel.restore_from("model.nemo", map_location="cpu")\n'
            'print(model.transcribe(["recitation.wav"])[0].text)\n```') in usage
    assert "change_decoding_strategy" not in usage
    assert ("The exports (`export/model.onnx` (fp32, 8.5 MB), `export/model.int8.onnx` (int8, 3.9 MB)) are each one "
            "ONNX graph") in usage
    assert ("| input | `audio` | float32 | [batch, samples]: raw mono audio at 16 kHz, in [-1, 1], zero-padded |"
            in usage)
    assert "| output | `log_probs` | float32 | [batch, frames, vocabulary + 1]: log-probabilities, the blank last |" \
        in usage
    assert 'session = ort.InferenceSession("export/model.int8.onnx")' in usage
    assert "a recording of any length goes in windows of 40 s with 2 s of context on each side" in usage
    assert "python -m quranft identify --model results/v1/export/model.int8.onnx recitation.m4a" in usage
    assert "python -m http.server 8000\nhttp://localhost:8000/web/?model=/results/v1/export/model.int8.onnx" in usage
    assert ("Thresholds: `model.nemo` 0.465; `export/model.onnx` 0.465; `export/model.int8.onnx` 0.48. An export "
            "carries its own in its metadata (`quranft.rejection`, JSON:") in usage
    assert "when it holds less than 0.25 s of speech" in usage


def test_the_hybrid_bases_card_switches_nemo_to_the_ctc_head_and_names_a_built_corpus_by_its_hub_id(tmp_path):
    settings = {**HUB_SETTINGS, "benchmark": {
        "corpus": "results/benchmark_corpus",
        "build": {"sources": [{"name": "retasy", "dataset": "RetaSy/quranic_audio_dataset"}]}}}
    meta, body = card(tmp_path, board_with_exports(tmp_path), "base", settings)
    assert meta["tags"][-1] == "hybrid-rnnt-ctc"
    [result] = meta["model-index"][0]["results"]
    assert result["dataset"] == {"type": "RetaSy/quranic_audio_dataset", "name": "Quran verse identification "
                                 "(benchmark_corpus, built from RetaSy/quranic_audio_dataset; 8 clips)"}
    usage = body.split("\n## How to use each file\n")[1]
    assert ("`model.nemo` is a hybrid RNNT/CTC model (`EncDecHybridRNNTCTCBPEModel`), as it was pretrained. NeMo "
            "decodes a restored hybrid with its RNNT head;") in usage
    assert "the RNNT head was not benchmarked (config key `benchmark.decoders`)." in usage
    assert 'model.change_decoding_strategy(decoder_type="ctc")  # the head the leaderboard ranks' in usage
    assert "Beside this card, in `results/base/`: `model.nemo`.\n" in usage and "### onnxruntime" not in usage
    assert "python -m quranft identify --model results/base/model.nemo recitation.m4a" in usage
    assert "In the browser" not in usage and "Thresholds: `model.nemo` 0.5." in usage

    _, judged = card(tmp_path / "heads", board_with_exports(tmp_path / "heads", heads=True), "base", settings)
    assert "the RNNT head's own figures are in its table below." in judged


def test_a_shipped_corpus_is_named_by_its_folder_without_settings_or_path(tmp_path):
    meta, body = card(tmp_path, board_with_exports(tmp_path), "base", HUB_SETTINGS)  # no benchmark settings
    [result] = meta["model-index"][0]["results"]
    assert result["dataset"] == {"type": "corpus", "name": "Quran verse identification (corpus; 8 clips)"}


def test_the_asr_test_set_is_named_by_its_hub_id_or_its_folders_name(tmp_path):
    from quranft.evaluation.model_card import model_index

    board = json.loads(open(board_with_exports(tmp_path), encoding="utf-8").read())
    row = next(row for row in board["rows"] if row["model"] == "v1")
    figures = {"plain": {"wer": 0.25, "cer": 0.1}, "diacritized": {"wer": 0.5, "cer": 0.2}}
    downloaded = tmp_path / "downloads" / "quranic-asr-benchmark"
    downloaded.mkdir(parents=True)
    for dataset, named in ((str(downloaded), "quranic-asr-benchmark"),
                           ("Quran-Lab/quranic-asr-benchmark", "Quran-Lab/quranic-asr-benchmark")):
        board["asr"] = {"test_set": {"dataset": dataset}, "rows": [{"model": "v1", "summary": {"all": figures}}]}
        asr = model_index(board, row, HUB_SETTINGS)[1]
        assert asr["dataset"] == {"type": named, "name": named}
        assert [(m["name"], m["value"]) for m in asr["metrics"]] == [
            ("WER without diacritics", 25.0), ("CER without diacritics", 10.0), ("WER with diacritics", 50.0)]
        assert str(tmp_path) not in yaml.safe_dump(asr)
