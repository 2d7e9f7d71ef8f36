"""The browser check and the reference page (web/), in headless Chromium (Debian's chromium and
chromedriver, which `make test` installs): the demo base's exports run by onnxruntime-web, WASM,
one thread."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import DEMO, small_corpus
from quranft.data.audio import load_audio
from quranft.data.benchmark_corpus import load_samples
from quranft.data.vad import VoiceActivity, speech_seconds
from quranft.evaluation.browser_check import FP32_MAX_DIFFERENCE, BrowserCheckError, run_browser_check
from quranft.matching.ctc_matcher import CTCMatcher
from quranft.matching.rejection import Rejection
from quranft.matching.scoring import score_rows
from quranft.matching.text_matcher import TextMatcher
from quranft.matching.verse_index import default_index
from quranft.models.browser import Browser, BrowserError, BrowserModel, find_chromium
from quranft.models.onnx_model import OnnxModel

WAV = DEMO / "benchmark" / "everyayah_001_004.wav"  # 16 kHz mono: the page and Python read the same samples
# The demo corpus's first 8 clips and its silence: with the front end's log and normalisation in
# float32, the silence (1.2e-3) and everyayah_001_007 (6.7e-4) were the clips whose fp32 log-probs
# the browser put furthest from Python's (deploy.graph.log_in_float64).
CHECK_CLIPS = {"everyayah_001_001.mp3", "retasy_001_002.mp3", "user_001_003.m4a", "everyayah_001_004.wav",
               "retasy_001_005.wav", "user_001_006.m4a", "everyayah_001_007.mp3", "everyayah_103_001.mp3",
               "negative_silence.wav"}


@pytest.fixture(scope="module")
def served(demo_base_export, tmp_path_factory) -> Path:
    """The demo base's exports, a WAV and a file that is no model, in one folder the page is served with."""
    folder = tmp_path_factory.mktemp("served")
    for path in demo_base_export[0].glob("model*.onnx"):
        shutil.copy2(path, folder / path.name)
    # the page's own test loads its own copy, which no other test has put in the page's cache
    shutil.copy2(demo_base_export[0] / "model.onnx", folder / "page.onnx")
    shutil.copy2(WAV, folder / WAV.name)
    (folder / "broken.onnx").write_bytes(b"not an onnx graph")
    return folder


@pytest.fixture(scope="module")
def browser(served):
    """One Chromium for the module, on the page, serving `served` under /models/."""
    with Browser(served) as open_browser:
        yield open_browser


@pytest.mark.slow
def test_the_check_runs_each_format_as_python_does_and_scores_the_browsers_log_probs(browser, served, tmp_path):
    corpus = small_corpus(tmp_path / "corpus", files=CHECK_CLIPS)
    clips = len(CHECK_CLIPS)
    models = [served / "model.onnx", served / "model.int8.onnx", served / "model.int4.onnx"]
    result = run_browser_check(models, corpus, tmp_path / "browser.json", "base", browser=browser)
    assert json.loads((tmp_path / "browser.json").read_text(encoding="utf-8")) == result
    assert result["runtime"]["onnxruntime_web"] == "1.30.0" and result["runtime"]["threads"] == 1
    assert result["runtime"]["chromium"].split(".")[0].isdigit()
    assert set(result["formats"]) == {"fp32", "int8", "int4"}
    fp32 = result["formats"]["fp32"]["parity"]
    assert fp32["clips"] == clips and fp32["identical_transcripts"] == clips and fp32["clips_differing"] == []
    assert FP32_MAX_DIFFERENCE == 1e-4 and fp32["max_abs_log_prob_difference"] <= FP32_MAX_DIFFERENCE
    for fmt, record in result["formats"].items():
        assert record["parity"]["page_decoding"] == {"clips": clips, "identical": clips}, fmt  # the page's own decoding
        assert record["latency"]["clips"] == clips and record["latency"]["median_ms"] > 0
        assert record["load"]["source"] == "network" and record["load"]["ms"] > 0
        assert set(record["rows"]) == {sample.id for sample in load_samples(corpus)}

    # the int8 figures are what scoring the browser's own log-probs gives, clip by clip, by hand
    model = BrowserModel(served / "model.int8.onnx", browser)
    model.load()
    vad = VoiceActivity()
    rows, log_probs = [], {}
    for sample in load_samples(corpus):
        audio = load_audio(corpus / sample.file)
        log_probs[sample.id] = model.log_probs([audio])[0]
        rows.append({"id": sample.id, "category": sample.category, "expected": [list(v) for v in sample.expected_verses],
                     "transcript": model.text(log_probs[sample.id]), "error": None, "error_kind": None,
                     "speech_seconds": speech_seconds(vad.speech(audio))})
    # the export's own confidence threshold, else the default one (this export chose none)
    rejection = Rejection.from_dict(model.rejection) or Rejection()
    expected = score_rows(rows, ("text", "ctc"), default_index(), TextMatcher(),
                          CTCMatcher(model.tokenizer, blank=model.blank), log_probs, rejection)
    int8 = result["formats"]["int8"]
    assert int8["rejection"]["threshold"] == rejection.threshold
    for matcher in ("text", "ctc"):
        for metric in ("sequence_accuracy", "recall", "precision"):
            assert int8["summary"][matcher][metric] == expected[matcher][metric], (matcher, metric)
    assert {row["id"]: row["matchers"]["ctc"]["sequence_accuracy"] for row in rows} == {
        sample: row["sequence_accuracy"] for sample, row in int8["rows"].items()}
    assert {row["id"]: row["transcript"] for row in rows} == {s: row["transcript"] for s, row in int8["rows"].items()}


@pytest.mark.slow
def test_the_page_transcribes_a_wav_as_python_does_and_keeps_the_model_for_the_next_visit(browser):
    first = browser.load("/models/page.onnx")
    heard = browser.transcribe_url(f"/models/{WAV.name}")
    python = OnnxModel(browser.models_dir / "page.onnx", threads=1)
    audio = load_audio(WAV)
    assert heard["text"] == python.text(python.log_probs([audio])[0]) != ""
    assert heard["seconds"] == pytest.approx(len(audio) / 16000) and heard["inferenceMs"] > 0
    browser.open_page()  # a second visit: the model from IndexedDB, not downloaded again
    second = browser.load("/models/page.onnx")
    assert (first["source"], second["source"]) == ("network", "cache")
    assert browser.requests.count(("GET", "/models/page.onnx")) == 1
    assert browser.transcribe_url(f"/models/{WAV.name}")["text"] == heard["text"]


@pytest.mark.slow
def test_a_file_that_is_no_model_or_no_file_fails_with_a_clear_error(browser):
    with pytest.raises(BrowserError, match=r"/models/broken.onnx: not an ONNX file \(not a protobuf message"):
        browser.load("/models/broken.onnx")
    with pytest.raises(BrowserError, match=r"/models/missing.onnx: cannot be read \(HTTP 404"):
        browser.load("/models/missing.onnx")


def test_without_chromium_the_check_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrowserError, match="no chromium and chromedriver on PATH: install Debian's chromium and "
                                           "chromium-driver"):
        find_chromium()
    with pytest.raises(BrowserError, match="no chromium and chromedriver"):
        with Browser(tmp_path):
            pass


def test_a_missing_export_file_is_named_before_anything_starts(tmp_path):
    with pytest.raises(BrowserCheckError, match=f"{tmp_path / 'model.onnx'}: no such file"):
        run_browser_check([tmp_path / "model.onnx"], DEMO / "benchmark", tmp_path / "browser.json", "base")
    assert not (tmp_path / "browser.json").exists()


@pytest.mark.slow
def test_the_pages_profile_of_an_int8_export_names_where_its_time_goes(browser):
    """onnxruntime-web's own profile of the demo int8 export in the page: every warm run's nodes,
    by part of the model and by operator type; the subsampling's convolutions run fused with
    their ReLU (deploy.graph.LeanMaskedConvs) in the browser's runtime itself."""
    from quranft.evaluation.browser_profile import profile_in_browser

    model = BrowserModel(browser.models_dir / "model.int8.onnx", browser)
    result = profile_in_browser(browser, "/models/model.int8.onnx", model, load_audio(WAV), runs=2)
    assert result["runs"] == 2 and len(result["page_ms"]) == 3
    assert {"front end (STFT, log-mel)", "subsampling: convolutions (fp32)", "int8 MatMuls: feed-forward",
            "int8 MatMuls: attention projections", "attention: float MatMuls (scores, positions, values)",
            "LayerNorm"} <= set(result["parts"])
    assert {"DynamicQuantizeMatMul", "FusedConv", "STFT"} <= set(result["ops"]) and "Relu" not in result["ops"]
    assert sum(result["parts"].values()) == pytest.approx(result["nodes_ms"])
    assert sum(result["ops"].values()) == pytest.approx(result["nodes_ms"])


def test_a_profile_is_summed_over_the_warm_runs_by_part_and_operator():
    """Constructed events as onnxruntime-web prints them: the first run left out, the others'
    nodes averaged per run."""
    from quranft.evaluation.browser_profile import profile_events, summarise

    def node(name, op, ts, dur):
        return json.dumps({"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur, "ph": "X",
                           "args": {"op_name": op}}) + ","

    lines = ["not a profile line",
             json.dumps({"cat": "Session", "name": "model_run", "ts": 0, "dur": 5000, "ph": "X", "args": {}}) + ",",
             node("front_end/node_STFT_1", "STFT", 10, 4000),
             json.dumps({"cat": "Session", "name": "model_run", "ts": 10000, "dur": 3000, "ph": "X", "args": {}}) + ",",
             node("front_end/node_STFT_1", "STFT", 10010, 1000),
             node("acoustic//layers.3/feed_forward1/linear1/MatMul_quant", "DynamicQuantizeMatMul", 11010, 1500),
             json.dumps({"cat": "Session", "name": "model_run", "ts": 20000, "dur": 2000, "ph": "X", "args": {}}) + ",",
             node("front_end/node_STFT_1", "STFT", 20010, 500),
             node("acoustic//layers.3/self_attn/linear_q/MatMul_quant", "MatMulIntegerToFloat", 20510, 1000)]
    result = summarise(profile_events(lines))
    assert result == {"runs": 2, "run_ms": 2.5, "nodes_ms": 2.0,
                      "parts": {"front end (STFT, log-mel)": 0.75, "int8 MatMuls: feed-forward": 0.75,
                                "int8 MatMuls: attention projections": 0.5},
                      "ops": {"STFT": 0.75, "DynamicQuantizeMatMul": 0.75, "MatMulIntegerToFloat": 0.5}}


def test_the_command_names_a_missing_export_and_writes_nothing(tmp_path, caplog):
    """`python -m quranft browser-check` (the rule's command) with a file that is not there: one
    line naming it, exit status 1, no browser.json, before any browser starts."""
    from conftest import REPO
    from quranft.cli import main

    missing = tmp_path / "export" / "model.int8.onnx"
    output = tmp_path / "export" / "browser.json"
    assert main(["browser-check", "--config", str(REPO / "config" / "config.yaml"), str(REPO / "config" / "demo.yaml"),
                 "--model", str(missing), "--name", "v2", "--output", str(output)]) == 1
    assert f"{missing}: no such file" in caplog.text and not output.exists()
