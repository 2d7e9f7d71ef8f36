"""The ASR benchmark on a local test set in Quran-Lab/quranic-asr-benchmark's layout (audio/<source>/
files with metadata.jsonl: file_name, text) and on a parquet with a subset column (no network)."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import encoded, synth
from quranft.config import validate_config
from quranft.quran import tanzil

SUBSETS = {"everyayah_heldout": [(112, 1), (112, 2)], "qul_alnufais": [(113, 1)], "tlog_holdout": [(114, 1), (1, 2)]}


def audio_folder(path):
    """An audio-folder dataset: audio/<subset>/<n>.wav beside a metadata.jsonl naming file and text."""
    number = 0
    for subset, verses in SUBSETS.items():
        folder = path / "audio" / subset
        folder.mkdir(parents=True)
        lines = []
        for surah, ayah in verses:
            (folder / f"{number}.wav").write_bytes(encoded(synth(1.0, seed=number), fmt="WAV"))
            lines.append({"file_name": f"{number}.wav", "text": tanzil.verse(surah, ayah, "uthmani")})
            number += 1
        (folder / "metadata.jsonl").write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
    return path


def asr_config(**settings):
    return validate_config({
        "base_model": "unused.nemo", "benchmark": {"corpus": "unused"}, "trials": {"names": []},
        "sources": {"quran_ayah_corpus": {"dataset": "unused", "splits": {"train": "train", "validation": "validation"}}},
        "data": {"include_retasy": False},
        "asr_benchmark": settings,
    })["asr_benchmark"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from quranft.evaluation.asr_benchmark import prepare_asr_set

    path = tmp_path_factory.mktemp("asr")
    settings = asr_config(dataset=str(audio_folder(path / "quran-lab")), split="train")
    report = prepare_asr_set(settings, path / "set")
    return path / "set", report


def test_the_test_set_is_identified_by_its_content(prepared, tmp_path):
    from quranft.fileio import manifest_hash, read_jsonl

    set_dir, report = prepared
    rows = read_jsonl(set_dir / "manifest.jsonl")
    assert report["sha256"] == manifest_hash(set_dir / "manifest.jsonl", set_dir, [r["audio_filepath"] for r in rows])
    copy = shutil.copytree(set_dir, tmp_path / "copy")
    first = copy / rows[0]["audio_filepath"]
    first.write_bytes(first.read_bytes()[:-2] + b"\x00\x00")  # two bytes of one clip
    assert manifest_hash(copy / "manifest.jsonl", copy, [r["audio_filepath"] for r in rows]) != report["sha256"]


def test_the_test_set_is_decoded_once_with_each_rows_subset(prepared):
    from quranft.fileio import read_jsonl

    set_dir, report = prepared
    assert report["by_subset"] == {name: len(verses) for name, verses in SUBSETS.items()}
    rows = read_jsonl(set_dir / "manifest.jsonl")
    assert all((set_dir / row["audio_filepath"]).is_file() and row["duration"] == 1.0 for row in rows)


def test_a_subset_column_names_the_subsets(tmp_path):
    from conftest import save_dataset
    from quranft.evaluation.asr_benchmark import prepare_asr_set

    rows = [{"audio": encoded(synth(1.0, seed=n)), "text": tanzil.verse(112, n + 1), "source": f"s{n % 2}"}
            for n in range(4)]
    rows.append({"audio": encoded(synth(1.0, seed=9)), "text": "  ", "source": "s0"})
    save_dataset(tmp_path / "parquet", {"test": rows}, fmt="parquet")
    settings = asr_config(dataset=str(tmp_path / "parquet"), split="test", subset_column="source")
    report = prepare_asr_set(settings, tmp_path / "set")
    assert report["by_subset"] == {"s0": 2, "s1": 2} and report["skipped"] == {"empty_text": 1}


def test_error_rates_with_and_without_diacritics():
    from quranft.evaluation.asr_benchmark import error_rates, error_rates_by_subset

    reference = tanzil.verse(112, 1, "uthmani")  # قُلْ هُوَ ٱللَّهُ أَحَدٌ
    same_letters = tanzil.verse(112, 1, "simple-clean")  # no marks at all
    figures = error_rates([reference], [same_letters])
    assert figures["plain"]["wer"] == 0.0 and figures["plain"]["cer"] == 0.0
    assert figures["diacritized"]["wer"] == 1.0  # every word lacks its marks
    assert error_rates([reference], [tanzil.verse(112, 1, "simple")])["diacritized"]["wer"] < 1.0
    one_word_wrong = error_rates([reference], ["قل هو الله واحد"])
    assert one_word_wrong["plain"]["wer"] == 0.25
    rows = [{"subset": "a", "reference": reference, "hypothesis": same_letters, "error": None},
            {"subset": "b", "reference": reference, "hypothesis": "", "error": "EmptyAudioError: no samples"}]
    summary = error_rates_by_subset(rows)
    assert summary["a"]["plain"]["wer"] == 0.0 and summary["b"]["plain"]["wer"] == 1.0
    assert summary["all"]["plain"]["wer"] == 0.5 and summary["all"]["failed"] == 1


@pytest.mark.slow
def test_a_model_is_scored_per_subset(prepared, tiny_base, tmp_path):
    from quranft.evaluation.asr_benchmark import run_asr_benchmark

    set_dir, _ = prepared
    result = run_asr_benchmark(tiny_base, set_dir, tmp_path / "asr.json", "base", batch_size=2)
    assert list(result["summary"]) == ["all", *sorted(SUBSETS)]
    assert result["summary"]["all"]["clips"] == 5 and result["summary"]["all"]["failed"] == 0
    for figures in result["summary"].values():
        assert figures["plain"]["wer"] is not None and figures["diacritized"]["cer"] is not None
    assert json.loads((tmp_path / "asr.json").read_text())["model"]["name"] == "base"
    assert "decoders" not in run_asr_benchmark(tiny_base, set_dir, tmp_path / "ctc.json", "base", batch_size=2,
                                               decoders=("ctc",))


@pytest.mark.slow
def test_the_rnnt_heads_transcripts_are_nemos_own_and_scored_like_the_ctc_heads(prepared, tiny_base, tmp_path):
    import jiwer

    from quranft.data.audio import load_audio
    from quranft.evaluation.asr_benchmark import run_asr_benchmark
    from quranft.fileio import read_jsonl
    from quranft.models import nemo_models
    from quranft.quran.arabic import diacritized, normalize

    set_dir, _ = prepared
    result = run_asr_benchmark(tiny_base, set_dir, tmp_path / "asr.json", "base", batch_size=2)
    rnnt = result["decoders"]["rnnt"]
    assert rnnt["decoding"] == {"head": "rnnt", "strategy": "greedy_batch", "max_symbols": 10}
    model = nemo_models.restore(tiny_base)
    model.change_decoding_strategy(decoder_type="rnnt", verbose=False)  # the model's own RNNT decoding
    audio = [load_audio(set_dir / row["audio_filepath"]) for row in read_jsonl(set_dir / "manifest.jsonl")]
    hypotheses = model.transcribe(audio, batch_size=1, verbose=False)
    hypotheses = hypotheses[0] if isinstance(hypotheses, tuple) else hypotheses
    assert [row["hypothesis"] for row in rnnt["rows"]] == [h.text for h in hypotheses]
    assert any(row["hypothesis"] for row in rnnt["rows"])
    assert [row["hypothesis"] for row in rnnt["rows"]] != [row["hypothesis"] for row in result["rows"]]
    for name, norm in (("plain", normalize), ("diacritized", diacritized)):
        references = [norm(row["reference"]) for row in rnnt["rows"]]
        hypotheses = [norm(row["hypothesis"]) for row in rnnt["rows"]]
        assert rnnt["summary"]["all"][name]["wer"] == pytest.approx(jiwer.wer(references, hypotheses))
        assert rnnt["summary"]["all"][name]["cer"] == pytest.approx(jiwer.cer(references, hypotheses))
    phone = [row for row in rnnt["rows"] if row["subset"] == "tlog_holdout"]
    assert rnnt["summary"]["tlog_holdout"]["plain"]["wer"] == pytest.approx(
        jiwer.wer([normalize(r["reference"]) for r in phone], [normalize(r["hypothesis"]) for r in phone]))


@pytest.mark.slow
def test_the_workflow_scores_every_model_on_the_test_set_prepared_once(tmp_path):
    from conftest import DEMO, demo_config_file, planned_jobs, snakemake

    data = audio_folder(tmp_path / "quran-lab")
    config = demo_config_file(tmp_path, base_model=str(DEMO / "base_model.nemo"),
                              asr_benchmark={"dataset": str(data), "split": "train"})
    jobs = planned_jobs(snakemake(tmp_path, "-n", "--configfile", str(config)).stdout)
    assert jobs["prepare_asr_benchmark"] == 1 and jobs["asr_benchmark_model"] == 7
    snakemake(tmp_path, "results/base/asr_benchmark.json", "-c1", "--configfile", str(config))
    result = json.loads((tmp_path / "results" / "base" / "asr_benchmark.json").read_text())
    assert result["summary"]["all"]["clips"] == 5 and set(result["summary"]) == {"all", *SUBSETS}


def asr_result(name, wer, dataset="quran-lab", kept=5, sha256="a" * 64):
    figures = {"clips": kept, "failed": 0, "plain": {"wer": wer, "cer": wer / 2, "reference_words": 20},
               "diacritized": {"wer": 2 * wer, "cer": wer, "reference_words": 20}}
    return {"model": {"name": name}, "test_set": {"dataset": dataset, "kept": kept, "hours": 0.01,
                                                  "by_subset": {"phone": 2, "studio": 3}, "sha256": sha256},
            "summary": {"all": figures, "phone": figures, "studio": figures}}


def test_the_leaderboard_sets_every_models_asr_figures_beside_verse_identification(tmp_path):
    from quranft.cli import main
    from test_leaderboard import ALL_RIGHT, BASE_RIGHT, benchmark

    args = ["leaderboard", "--benchmarks"]
    asr = []
    for name, right, wer in (("base", BASE_RIGHT, 0.0744), ("v1", ALL_RIGHT, 0.0541)):
        (tmp_path / f"{name}.json").write_text(json.dumps(benchmark(name, right)))
        (tmp_path / f"{name}.asr.json").write_text(json.dumps(asr_result(name, wer)))
        args.append(f"{name}={tmp_path / f'{name}.json'}")
        asr.append(f"{name}={tmp_path / f'{name}.asr.json'}")
    out = tmp_path / "board"
    assert main([*args, "--asr", *asr, "--markdown", f"{out}.md", "--json", f"{out}.json", "--png", f"{out}.png"]) == 0
    markdown = out.with_suffix(".md").read_text(encoding="utf-8")
    assert "## ASR benchmark" in markdown and "| model | all (5) | phone (2) | studio (3) | all, with diacritics |" in markdown
    assert "| base | 7.44 / 3.72 | 7.44 / 3.72 | 7.44 / 3.72 | 14.88 / 7.44 |" in markdown
    assert [row["model"] for row in json.loads(out.with_suffix(".json").read_text())["asr"]["rows"]] == ["base", "v1"]
    # the same dataset, clip counts and subsets, other content (one clip re-encoded): refused
    (tmp_path / "v1.asr.json").write_text(json.dumps(asr_result("v1", 0.05, sha256="b" * 64)))
    assert main([*args, "--asr", *asr, "--markdown", f"{out}.md", "--json", f"{out}.json", "--png", f"{out}.png"]) == 1


def test_the_leaderboard_sets_the_rnnt_heads_asr_figures_in_rows_of_their_own():
    from quranft.evaluation.leaderboard import asr_section
    from quranft.evaluation.leaderboard_markdown import asr

    results = {name: asr_result(name, wer) for name, wer in (("base", 0.0744), ("v1", 0.0541), ("v2", 0.06))}
    for name, wer in (("base", 0.1), ("v1", 0.08)):  # v2: no RNNT head
        results[name]["decoders"] = {"rnnt": {"decoding": {"head": "rnnt"},
                                              "summary": asr_result(name, wer)["summary"]}}
    section = asr_section(results, {name: f"{name}.json" for name in results})
    assert [row["model"] for row in section["rows"]] == ["base", "v1", "v2"]
    assert [row["model"] for row in section["decoders"]["rnnt"]] == ["base", "v1"]
    lines = asr({"asr": section})
    table = [line.split(" | ")[0] for line in lines if line.startswith("| ") and "---" not in line][1:]
    assert table == ["| base", "| v1", "| v2", "| base (rnnt)", "| v1 (rnnt)"]
    assert "| base (rnnt) | 10.00 / 5.00 | 10.00 / 5.00 | 10.00 / 5.00 | 20.00 / 10.00 |" in lines
    assert "the rows marked (rnnt): the model's RNNT head" in lines[3]
    del results["base"]["decoders"], results["v1"]["decoders"]
    assert "decoders" not in asr_section(results, {name: f"{name}.json" for name in results})


def test_the_asr_test_sets_clips_join_the_leakage_guard(prepared, tmp_path):
    from conftest import DEMO, data_config, save_dataset
    from quranft.data.benchmark_corpus import load_samples
    from quranft.data.benchmark_index import build_index, write_index
    from quranft.data.prepare import prepare_source
    from quranft.data.sessions import load_sessions
    from quranft.fileio import read_jsonl

    set_dir, _ = prepared
    index, skipped = build_index(DEMO / "benchmark", set_dir)
    corpus = len(load_samples(DEMO / "benchmark")) + len(load_sessions(DEMO / "benchmark"))
    assert not skipped and len(index) == corpus + 5
    write_index(index, tmp_path / "fingerprints.npz")
    first = read_jsonl(set_dir / "manifest.jsonl")[0]
    rows = [{"audio": (set_dir / first["audio_filepath"]).read_bytes(), "text": first["text"]},
            {"audio": encoded(synth(2.0, seed=4321)), "text": "a clip of its own"}]
    config = data_config()
    source = {**config["sources"]["quran_ayah_corpus"],
              "dataset": str(save_dataset(tmp_path / "dataset", {"train": rows, "validation": rows[1:]}))}
    report = prepare_source("quran_ayah_corpus", source, config["data"], tmp_path / "out", tmp_path / "fingerprints.npz")
    [leak] = report["splits"]["train"]["leaked"]
    assert leak["id"] == "quran_ayah_corpus-train-0000000" and f"asr_benchmark:{first['id']}" in leak["match"]
