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


def test_the_rnnt_heads_transcripts_are_nemos_own_greedy_transcripts_of_the_same_clips(benchmarked, corpus, tiny_base):
    from quranft.data.audio import load_audio
    from quranft.models import nemo_models

    result = json.loads((benchmarked / "benchmark.json").read_text(encoding="utf-8"))
    rnnt = result["decoders"]["rnnt"]
    assert rnnt["decoding"] == {"head": "rnnt", "strategy": "greedy_batch", "max_symbols": 10}
    assert [row["id"] for row in rnnt["rows"]] == [row["id"] for row in result["rows"]]
    transcribed = [row for row in result["rows"] if row["transcript"] is not None]  # WAV, MP3 and M4A clips
    model = nemo_models.restore(tiny_base)
    model.change_decoding_strategy(decoder_type="rnnt", verbose=False)  # the model's own RNNT decoding
    hypotheses = model.transcribe([load_audio(corpus / row["file"]) for row in transcribed], batch_size=1,
                                  verbose=False)
    hypotheses = hypotheses[0] if isinstance(hypotheses, tuple) else hypotheses
    heard = {row["id"]: row for row in rnnt["rows"]}
    assert [heard[row["id"]]["transcript"] for row in transcribed] == [h.text for h in hypotheses]
    assert any(h.text for h in hypotheses)
    assert all(heard[row["id"]]["seconds"] > 0 for row in transcribed)
    assert rnnt["decode_seconds"] == pytest.approx(sum(heard[row["id"]]["seconds"] for row in transcribed), abs=1e-3)
    # the clips that could not be decoded fail the RNNT head too, with the same error
    assert [(heard[s]["error_kind"], heard[s]["transcript"]) for s in ("gone", "broken")] == [("decode", None)] * 2
    assert rnnt["summary"]["text"]["errors"] == {"decode": 2} and rnnt["matcher"] == "text"
    # every figure outside the block stays the CTC head's: latency is timed without the RNNT head
    assert result["decoding"] == {"head": "ctc", "strategy": "greedy",
                                  "windows": {"window_seconds": 40.0, "context_seconds": 2.0}}


def test_the_rnnt_blocks_figures_follow_from_its_rows():
    from quranft.evaluation.benchmark import rnnt_block
    from quranft.matching.text_matcher import TextMatcher
    from quranft.matching.verse_index import default_index

    multi = [[112, 1], [112, 2], [112, 3], [112, 4]]
    rows = [{"id": "a", "category": "short", "expected": [[112, 2]], "transcript": tanzil.verse(112, 2),
             "error": None, "error_kind": None, "seconds": 0.25},
            {"id": "b", "category": "multi", "expected": multi,  # heard three of the four verses
             "transcript": " ".join(tanzil.verse(112, a) for a in (1, 2, 3)), "error": None, "error_kind": None,
             "seconds": 0.5},
            {"id": "c", "category": "short", "expected": [[1, 1]], "transcript": None,
             "error": "AudioDecodeError: c.wav", "error_kind": "decode", "seconds": None}]
    block = rnnt_block({"head": "rnnt"}, rows, default_index(), TextMatcher())
    assert [row["matchers"]["text"]["predicted"] for row in rows[:2]] == [[[112, 2]], multi[:3]]
    summary = block["summary"]["text"]
    assert summary["sequence_accuracy"] == pytest.approx(1 / 3)
    assert summary["recall"] == pytest.approx((1 + 3 / 4 + 0) / 3)
    assert summary["precision"] == pytest.approx((1 + 1 + 0) / 3)
    assert summary["per_category"]["multi"] == {"recall": 0.75, "precision": 1.0, "sequence_accuracy": 0.0,
                                                 "samples": 1}
    assert summary["errors"] == {"decode": 1} and block["decode_seconds"] == 0.75
    references = [normalize(expected_text(row["expected"])) for row in rows]
    hypotheses = [normalize(row["transcript"] or "") for row in rows]
    assert block["transcripts"]["wer"] == pytest.approx(jiwer.wer(references, hypotheses))
    assert block["transcripts"]["cer"] == pytest.approx(jiwer.cer(references, hypotheses))


def test_decoders_ctc_alone_judges_no_rnnt_head_and_leaves_the_ctc_figures_as_they_were(benchmarked, corpus,
                                                                                       tiny_base, tmp_path):
    from quranft.cli import main

    both = json.loads((benchmarked / "benchmark.json").read_text(encoding="utf-8"))
    settings = tmp_path / "settings.json"  # the config's benchmark section, as the rule passes it
    settings.write_text(json.dumps({"benchmark": {"corpus": str(corpus), "matchers": ["text", "ctc"],
                                                  "primary_matcher": "ctc", "batch_size": 8, "decoders": ["ctc"]}}))
    assert main(["benchmark", "--settings", str(settings), "--model", str(tiny_base), "--name", "base",
                 "--output", str(tmp_path / "benchmark.json")]) == 0
    alone = json.loads((tmp_path / "benchmark.json").read_text(encoding="utf-8"))
    assert "decoders" not in alone
    assert [row["transcript"] for row in alone["rows"]] == [row["transcript"] for row in both["rows"]]
    assert alone["summary"] == both["summary"] and alone["transcripts"] == both["transcripts"]


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
    for matcher, source, decoder in (("text", jsonl, "ctc"), ("text", benchmarked / "benchmark.json", "ctc"),
                                     ("ctc", benchmarked / "benchmark.json", "ctc")):
        result = rescore(corpus, source, matcher, tmp_path / "predictions.json",
                         log_probs_path=benchmarked / "log_probs.npz", tokenizer_from=tiny_base, decoder=decoder)
        judged = source.suffix == ".json"  # a JSONL of transcripts carries no threshold: nothing is refused
        for original, again in zip(benchmark["rows"], result["rows"]):
            assert original["id"] == again["id"]
            scored = original["matchers"][matcher]
            expected = scored.get("predicted") if judged else (scored.get("refused_verses") or scored.get("predicted"))
            assert expected == again["matchers"][matcher].get("predicted")
            if judged:
                assert scored["sequence_accuracy"] == again["matchers"][matcher]["sequence_accuracy"]
                assert scored.get("confidence") == again["matchers"][matcher].get("confidence")
        if judged:
            assert result["summary"][matcher]["recall"] == benchmark["summary"][matcher]["recall"]
        assert result["matcher"]["version"] == benchmark["matchers"][matcher]["version"]


def test_rescoring_the_rnnt_heads_transcripts_reproduces_its_block(benchmarked, corpus, tmp_path):
    from quranft.evaluation.rescore import RescoreError

    block = json.loads((benchmarked / "benchmark.json").read_text(encoding="utf-8"))["decoders"]["rnnt"]
    result = rescore(corpus, benchmarked / "benchmark.json", "text", tmp_path / "predictions.json", decoder="rnnt")
    assert [row["matchers"]["text"].get("predicted") for row in result["rows"]] \
        == [row["matchers"]["text"].get("predicted") for row in block["rows"]]
    assert result["summary"]["text"]["recall"] == block["summary"]["text"]["recall"] and result["decoder"] == "rnnt"
    with pytest.raises(RescoreError, match="scored by the text matcher"):
        rescore(corpus, benchmarked / "benchmark.json", "ctc", tmp_path / "p.json", decoder="rnnt")


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
    assert to_markdown(build({"base": base})).count("| 1 | base |") == 1  # the ranking lists it once
