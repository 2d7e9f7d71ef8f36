"""The benchmark runner, re-scoring and the leaderboard on a real (tiny) model and real audio."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import jiwer
import numpy as np
import pytest

from conftest import DEMO
from quranft.evaluation.benchmark import expected_text, run_benchmark
from quranft.evaluation.code_versions import matcher_versions
from quranft.evaluation.leaderboard import build, to_markdown, write_leaderboard
from quranft.evaluation.rescore import rescore
from quranft.quran import tanzil
from quranft.quran.arabic import normalize

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Five demo clips, plus a sample whose file is missing and one whose file is not audio."""
    folder = tmp_path_factory.mktemp("corpus")
    manifest = json.loads((DEMO / "benchmark" / "manifest.json").read_text(encoding="utf-8"))
    chosen = [s for s in manifest["samples"] if s["id"] in
              {"everyayah_112_002", "retasy_113_003", "user_103_002", "multi_112_001_004", "leak_retasy_103_002"}]
    for sample in chosen:
        shutil.copy(DEMO / "benchmark" / sample["file"], folder / sample["file"])
    (folder / "broken.wav").write_bytes(b"RIFF....WAVEnot audio at all")
    chosen += [
        {"id": "gone", "file": "gone.wav", "surah": 1, "ayah": 1, "category": "short", "source": "user"},
        {"id": "broken", "file": "broken.wav", "surah": 1, "ayah": 2, "category": "short", "source": "user"},
    ]
    (folder / "manifest.json").write_text(json.dumps({"samples": chosen}, ensure_ascii=False), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def benchmarked(tmp_path_factory, tiny_base, corpus) -> Path:
    out = tmp_path_factory.mktemp("bench")
    run_benchmark(tiny_base, corpus, out / "benchmark.json", "base", log_probs_path=out / "log_probs.npz")
    return out


def test_the_benchmark_json_has_what_the_protocol_asks(benchmarked, tiny_base):
    result = json.loads((benchmarked / "benchmark.json").read_text(encoding="utf-8"))
    assert result["model"]["name"] == "base" and result["model"]["bytes"] == tiny_base.stat().st_size
    from quranft.models import nemo_models

    assert result["model"]["parameters"] == nemo_models.count_parameters(nemo_models.restore(tiny_base))["total"]
    assert result["corpus"]["samples"] == 7 and len(result["corpus"]["sha256"]) == 64
    assert result["matchers"]["primary"] == "ctc"
    for matcher, version in matcher_versions().items():  # the hash of the matcher's and the scoring code
        assert result["matchers"][matcher]["version"] == version and len(version) == 16
    assert "settings" in result["matchers"]["text"]
    for matcher in ("text", "ctc"):
        summary = result["summary"][matcher]
        assert summary["samples"] == 7 and set(summary["per_category"]) == {"short", "medium", "multi"}
    latency = result["latency"]
    timed = [row for row in result["rows"] if row["latency"] is not None]
    assert latency["samples"] == len(timed) == 5 and latency["device"] == "cpu"
    assert latency["median"] == statistics.median(row["latency"] for row in timed)
    assert latency["p95"] == pytest.approx(float(np.percentile([row["latency"] for row in timed], 95)))
    assert latency["real_time_factor"] == pytest.approx(sum(r["latency"] for r in timed) / sum(r["duration"] for r in timed))
    batch = latency["batch"]
    assert (batch["clips"], batch["failed"]) == (5, 0)
    assert batch["clips_per_second"] == pytest.approx(5 / batch["seconds"], rel=1e-2)
    references = [normalize(expected_text(row["expected"])) for row in result["rows"]]
    hypotheses = [normalize(row["transcript"] or "") for row in result["rows"]]
    assert result["transcripts"]["wer"] == pytest.approx(jiwer.wer(references, hypotheses))
    assert result["transcripts"]["cer"] == pytest.approx(jiwer.cer(references, hypotheses))
    assert {"git_commit", "versions", "date"} <= set(result["provenance"])
    row = next(r for r in result["rows"] if r["id"] == "multi_112_001_004")
    assert row["expected"] == [[112, 1], [112, 2], [112, 3], [112, 4]]
    assert isinstance(row["transcript"], str) and row["latency"] > 0
    assert set(row["matchers"]["ctc"]) >= {"predicted", "recall", "precision", "sequence_accuracy"}


def test_missing_and_undecodable_clips_score_zero_with_their_errors(benchmarked):
    result = json.loads((benchmarked / "benchmark.json").read_text(encoding="utf-8"))
    rows = {r["id"]: r for r in result["rows"]}
    assert "gone.wav" in rows["gone"]["error"] and rows["gone"]["transcript"] is None
    assert rows["broken"]["error"].startswith("AudioDecodeError:")
    assert rows["gone"]["error_kind"] == rows["broken"]["error_kind"] == "decode"
    assert result["summary"]["text"]["errors"] == result["summary"]["ctc"]["errors"] == {"decode": 2}
    for sample in ("gone", "broken"):
        for matcher in ("text", "ctc"):
            scores = rows[sample]["matchers"][matcher]
            assert (scores["recall"], scores["precision"], scores["sequence_accuracy"]) == (0.0, 0.0, 0.0)


def test_rescoring_saved_output_reproduces_the_benchmark(benchmarked, corpus, tiny_base, tmp_path):
    benchmark = json.loads((benchmarked / "benchmark.json").read_text(encoding="utf-8"))
    jsonl = tmp_path / "transcripts.jsonl"
    jsonl.write_text("".join(json.dumps({"id": r["id"], "text": r["transcript"]}, ensure_ascii=False) + "\n"
                             for r in benchmark["rows"] if r["transcript"] is not None), encoding="utf-8")
    for matcher, source in (("text", jsonl), ("text", benchmarked / "benchmark.json"),
                            ("ctc", benchmarked / "benchmark.json")):
        result = rescore(corpus, source, matcher, tmp_path / "predictions.json",
                         log_probs_path=benchmarked / "log_probs.npz", tokenizer_from=tiny_base)
        for original, again in zip(benchmark["rows"], result["rows"]):
            assert original["id"] == again["id"]
            assert original["matchers"][matcher].get("predicted") == again["matchers"][matcher].get("predicted")
            assert original["matchers"][matcher]["sequence_accuracy"] == again["matchers"][matcher]["sequence_accuracy"]
        assert result["summary"][matcher]["recall"] == benchmark["summary"][matcher]["recall"]
        assert result["matcher"]["version"] == benchmark["matchers"][matcher]["version"]


def test_rescoring_finds_the_verses_in_good_transcripts(corpus, tmp_path):
    jsonl = tmp_path / "transcripts.jsonl"
    good = {"everyayah_112_002": tanzil.verse(112, 2),
            "multi_112_001_004": " ".join(tanzil.verse(112, a) for a in range(1, 5)),
            "retasy_113_003": "كلام لا علاقة له"}
    jsonl.write_text("".join(json.dumps({"id": k, "text": v}, ensure_ascii=False) + "\n" for k, v in good.items()),
                     encoding="utf-8")
    result = rescore(corpus, jsonl, "text", tmp_path / "predictions.json")
    rows = {r["id"]: r for r in result["rows"]}
    assert rows["everyayah_112_002"]["matchers"]["text"]["predicted"] == [[112, 2]]
    assert rows["multi_112_001_004"]["matchers"]["text"]["sequence_accuracy"] == 1.0
    assert rows["retasy_113_003"]["matchers"]["text"]["predicted"] == []
    assert rows["user_103_002"]["error"].startswith("no transcript for user_103_002")
    assert result["summary"]["text"]["errors"] == {"no_transcript": 4}
    assert json.loads((tmp_path / "predictions.json").read_text(encoding="utf-8"))["matcher"]["name"] == "text"


def test_the_leaderboard_compares_each_model_with_the_base(benchmarked, tmp_path):
    base = json.loads((benchmarked / "benchmark.json").read_text(encoding="utf-8"))
    better = json.loads(json.dumps(base))
    better["model"]["name"] = "v1"
    for row in better["rows"]:  # pretend the trial got every sample right with the ctc matcher
        row["matchers"]["ctc"].update(recall=1.0, precision=1.0, sequence_accuracy=1.0)
    better["summary"]["ctc"].update(recall=1.0, precision=1.0, sequence_accuracy=1.0)
    files = {"base": benchmarked / "benchmark.json", "v1": tmp_path / "v1.json"}
    files["v1"].write_text(json.dumps(better), encoding="utf-8")
    board = write_leaderboard(files, tmp_path / "board.md", tmp_path / "board.json", tmp_path / "board.png")
    assert [row["model"] for row in board["rows"]] == ["v1", "base"]  # ranked: v1 got every sample right
    versus = board["rows"][0]["versus_base"]
    recovered = [r["id"] for r in base["rows"] if r["matchers"]["ctc"]["sequence_accuracy"] == 0]
    assert versus["recovered"] == sorted(recovered) and versus["regressed"] == []
    # all discordant pairs one way: the exact two-sided binomial p is 2 * 0.5 ** n
    assert versus["mcnemar_p"] == pytest.approx(min(1.0, 2 * 0.5 ** len(recovered)))
    assert versus["mcnemar_p_holm"] == versus["mcnemar_p"]  # one comparison
    markdown = (tmp_path / "board.md").read_text(encoding="utf-8")
    assert "| 1 | v1 |" in markdown and "| 2 | base |" in markdown and "ctc" in markdown
    assert (tmp_path / "board.png").read_bytes()[:4] == b"\x89PNG"
    assert to_markdown(build({"base": base})).count("| base |") == 1
