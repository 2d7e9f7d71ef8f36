"""Building the verse-identification corpus from local datasets in the real schemas (no network):
a RetaSy-like parquet (surah names, diacritized aya text, labels) and EveryAyah-like parquets
(reciter and text, or reciter and surah/ayah numbers)."""

from __future__ import annotations

import json

import pytest

from conftest import DEMO, encoded, synth
from quranft.config import ConfigError, validate_config
from quranft.data.benchmark_corpus import load_samples
from quranft.quran import tanzil
from quranft.quran.surah_names import NAMES, surah_number

RATE = 16000


def write_parquet(path, rows, columns):
    """Rows with encoded audio as a parquet file whose audio column is an Audio feature."""
    import datasets

    features = datasets.Features({"audio": {"bytes": datasets.Value("binary"), "path": datasets.Value("string")},
                                  **columns})
    table = {"audio": [{"bytes": row["audio"], "path": None} for row in rows]}
    table.update({name: [row[name] for row in rows] for name in columns})
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict(table, features=features).cast_column("audio", datasets.Audio()).to_parquet(str(path))
    return path


def clip(seed, seconds=1.0):
    return encoded(synth(seconds, seed=seed), fmt="WAV")


def retasy_like(path):
    """RetaSy's columns; surah names transliterated (two spellings) or Arabic; the text diacritized."""
    import datasets

    rows = []
    verses = [(1, 2), (1, 5), (1, 7), (112, 1), (112, 2), (113, 1), (114, 1), (2, 255), (2, 282), (36, 1), (103, 3)]
    names = {1: "Al-Faatihah", 112: "Al-Ikhlaas", 113: "Al-Falaq", 114: "An-Naas", 2: "Al-Baqara", 36: "Yaseen",
             103: "العصر"}
    for number, key in enumerate(verses):
        rows.append({"audio": clip(100 + number), "Surah": names[key[0]], "Aya": tanzil.verse(*key, "simple"),
                     "final_label": "correct", "reciter_id": f"r{number}"})
    extra = [
        # the basmala said before the first verse of An-Nas: the truth is 114:1 alone
        {"Surah": "An-Nas", "Aya": tanzil.basmala("simple") + " " + tanzil.verse(114, 1, "simple"),
         "final_label": "correct"},
        # a word changed: a fuzzy match within the named surah
        {"Surah": "Al-Baqara", "Aya": tanzil.verse(2, 286, "simple").replace("وُسْعَهَا", "طاقتها"),
         "final_label": "correct"},
        {"Surah": "Al-Faatiha", "Aya": "هذا نص لا يطابق أي آية من القرآن الكريم أبدا", "final_label": "correct"},
        {"Surah": "Not A Surah", "Aya": tanzil.verse(112, 3, "simple"), "final_label": "correct"},
        {"Surah": "Al-Falaq", "Aya": tanzil.verse(113, 2, "simple"), "final_label": "in_correct"},
    ]
    for number, row in enumerate(extra):
        rows.append({"audio": clip(200 + number), "reciter_id": f"x{number}", **row})
    columns = {"Surah": datasets.Value("string"), "Aya": datasets.Value("string"),
               "final_label": datasets.Value("string"), "reciter_id": datasets.Value("string")}
    return write_parquet(path / "data" / "train-00000-of-00001.parquet", rows, columns)


def everyayah_like(path, numbered=False):
    """tarteel-ai/everyayah's columns (audio, duration, text, reciter); with surah/ayah numbers when
    `numbered`. Reciter a recites 112 to 114 in order, reciter b scattered verses."""
    import datasets

    keys = [("a", 112, a) for a in range(1, 5)] + [("a", 113, a) for a in range(1, 6)]
    keys += [("a", 114, a) for a in range(1, 7)]
    keys += [("b", 1, 3), ("b", 55, 13), ("b", 2, 2), ("b", 18, 10), ("b", 67, 1)]
    rows = []
    for number, (reciter, surah, ayah) in enumerate(keys):
        seconds = 0.8 + 0.1 * (number % 4)
        rows.append({"audio": clip(300 + number, seconds), "duration": seconds, "reciter": reciter,
                     "text": tanzil.verse(surah, ayah, "uthmani"), "surah": surah, "ayah": ayah})
    columns = {"duration": datasets.Value("float64"), "text": datasets.Value("string"),
               "reciter": datasets.Value("string")}
    if numbered:
        columns.update(surah=datasets.Value("int32"), ayah=datasets.Value("int32"))
    return write_parquet(path / "data" / "test-00000-of-00001.parquet", rows, columns)


def build_config(tmp_path, seed=7, **everyayah):
    return validate_config({
        "base_model": "unused.nemo",
        "sources": {"quran_ayah_corpus": {"dataset": "unused", "splits": {"train": "train", "validation": "validation"}}},
        "data": {"include_retasy": False},
        "trials": {"names": []},
        "benchmark": {"corpus": str(tmp_path / "corpus"), "build": {"seed": seed, "sources": [
            {"name": "retasy", "dataset": str(tmp_path / "retasy"), "split": "train", "text_column": "Aya",
             "surah_column": "Surah", "speaker_column": "reciter_id", "label_column": "final_label",
             "keep_labels": ["correct"], "singles": {"short": 2, "medium": 2, "long": 2}},
            {"name": "everyayah", "dataset": str(tmp_path / "everyayah"), "split": "test", "speaker_column": "reciter",
             "singles": {"short": 1, "medium": 1, "long": 1}, "multi": {"count": 3, "min_verses": 2, "max_verses": 4},
             **everyayah},
        ]}},
    })


@pytest.fixture(scope="module")
def datasets_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("build-data")
    retasy_like(path / "retasy")
    everyayah_like(path / "everyayah")
    everyayah_like(path / "numbered", numbered=True)
    return path


@pytest.fixture(scope="module")
def built(datasets_dir):
    from quranft.evaluation.build_corpus import build_corpus

    config = build_config(datasets_dir)
    report = build_corpus(config["benchmark"]["build"], config["benchmark"]["corpus"])
    return datasets_dir / "corpus", report


def test_every_surah_name_and_common_spellings_give_its_number():
    for number, (latin, arabic) in enumerate(NAMES, start=1):
        assert surah_number(latin) == number and surah_number(arabic) == number
    for spelling, number in [("Al-Faatihah", 1), ("surat al-fatiha", 1), ("سورة الفاتحة", 1), ("Ya-Sin", 36),
                             ("Aal-i-Imraan", 3), ("Ali 'Imran", 3), ("النبأ", 78), ("Al-Kauthar", 108),
                             ("112", 112), (9, 9)]:
        assert surah_number(spelling) == number, spelling
    for unknown in ["Not A Surah", "", None, 0, 115, "115", 2.5]:
        assert surah_number(unknown) is None


def test_the_built_corpus_follows_the_protocol_with_the_counts_asked_for(built):
    corpus, report = built
    samples = load_samples(corpus)
    assert all((corpus / s.file).is_file() for s in samples)
    counts = {(s.source, s.category) for s in samples}
    assert report["sources"]["retasy"]["picked"] == {"short": 2, "medium": 2, "long": 2, "multi": 0}
    assert report["sources"]["everyayah"]["picked"] == {"short": 1, "medium": 1, "long": 1, "multi": 3}
    assert ("everyayah", "multi") in counts and report["samples"] == len(samples) == 12
    for sample in samples:
        surah, first = sample.expected_verses[0]
        assert sample.expected_verses == tuple((surah, first + k) for k in range(len(sample.expected_verses)))
        assert (len(sample.expected_verses) > 1) == (sample.category == "multi")


def test_multi_verse_clips_join_one_reciters_verses_with_half_a_second_of_silence(built, datasets_dir):
    import datasets

    from quranft.data.audio import load_audio

    corpus, report = built
    rows = datasets.load_dataset("parquet", data_files=str(datasets_dir / "everyayah" / "data" / "*.parquet"),
                                 split="train").cast_column("audio", datasets.Audio(decode=False))
    multi = [s for s in load_samples(corpus) if s.category == "multi"]
    assert {len(s.expected_verses) for s in multi} == {2, 3, 4}  # lengths cycle from min to max
    for sample in multi:
        assert sample.raw["speaker"] == "a" and len(sample.raw["rows"]) == len(sample.expected_verses)
        parts = sum(len(load_audio(rows[i]["audio"]["bytes"])) for i in sample.raw["rows"])
        silence = int(0.5 * RATE) * (len(sample.expected_verses) - 1)
        assert len(load_audio(corpus / sample.file)) == parts + silence


def test_rows_whose_verse_cannot_be_told_are_skipped_and_counted(built):
    _, report = built
    retasy = report["sources"]["retasy"]
    assert retasy["skipped"] == {"bad_label": 1, "no_matching_verse": 1, "unknown_surah": 1}
    assert retasy["skipped_examples"]["unknown_surah"][0]["Surah"] == "Not A Surah"
    assert retasy["resolved"] == {"exact": 12, "fuzzy": 1}
    assert report["sources"]["everyayah"]["resolved"] == {"exact": 19}
    assert report["sources"]["everyayah"]["skipped"] == {"ambiguous_text": 1}  # 55:13, one of Ar-Rahman's refrains


def test_the_basmala_is_said_and_skipped(datasets_dir):
    from quranft.evaluation.build_corpus import VerseResolver, default_index

    resolver = VerseResolver(default_index(), 90)
    said = resolver.from_text(tanzil.basmala("uthmani") + " " + tanzil.verse(114, 1, "uthmani"), 114)
    assert said.verse == (114, 1) and said.basmala_said
    assert resolver.from_text(tanzil.basmala("simple")).verse == (1, 1)
    assert resolver.from_text(tanzil.basmala("simple") + " " + tanzil.verse(1, 2)).skip == "several_verses"


def test_the_same_seed_builds_the_same_corpus_and_another_seed_another(datasets_dir, built, tmp_path):
    from quranft.evaluation.build_corpus import build_corpus

    corpus, _ = built
    config = build_config(datasets_dir)
    build_corpus(config["benchmark"]["build"], tmp_path / "again")
    assert (tmp_path / "again" / "manifest.json").read_bytes() == (corpus / "manifest.json").read_bytes()
    for sample in load_samples(corpus):
        assert (tmp_path / "again" / sample.file).read_bytes() == (corpus / sample.file).read_bytes()
    other = build_config(datasets_dir, seed=8)
    build_corpus(other["benchmark"]["build"], tmp_path / "other")
    assert (tmp_path / "other" / "manifest.json").read_bytes() != (corpus / "manifest.json").read_bytes()


def test_surah_and_ayah_columns_give_the_verse_without_the_text(datasets_dir, tmp_path):
    from quranft.evaluation.build_corpus import build_corpus

    config = build_config(datasets_dir, dataset=str(datasets_dir / "numbered"), text_column=None,
                          surah_column="surah", ayah_column="ayah")
    report = build_corpus(config["benchmark"]["build"], tmp_path / "numbered")
    assert report["sources"]["everyayah"]["resolved"] == {"columns": 20}
    assert report["sources"]["everyayah"]["picked"]["multi"] == 3


def test_the_built_corpus_scores_with_the_benchmark(built, tmp_path):
    """Transcripts that are the expected verses' text score 100% with the benchmark's matcher."""
    from quranft.evaluation.benchmark import expected_text
    from quranft.evaluation.rescore import rescore

    corpus, _ = built
    transcripts = tmp_path / "transcripts.jsonl"
    transcripts.write_text("".join(json.dumps({"id": s.id, "text": expected_text(s.expected_verses)},
                                              ensure_ascii=False) + "\n" for s in load_samples(corpus)))
    result = rescore(corpus, transcripts, "text", tmp_path / "scores.json")
    assert result["summary"]["text"]["sequence_accuracy"] == 1.0


@pytest.mark.slow
def test_the_built_corpus_runs_through_the_model_benchmark(built, tiny_base, tmp_path):
    from quranft.evaluation.benchmark import run_benchmark

    corpus, _ = built
    result = run_benchmark(tiny_base, corpus, tmp_path / "benchmark.json", "base", matchers=("text",), primary="text")
    assert result["corpus"]["samples"] == 12 and not result["summary"]["text"]["errors"]


def test_the_leakage_guard_excludes_the_built_retasy_clips_from_training(built, datasets_dir, tmp_path):
    from quranft.data.benchmark_index import build_index, write_index
    from quranft.data.prepare import prepare_source

    corpus, _ = built
    index, skipped = build_index(corpus)
    assert not skipped
    write_index(index, tmp_path / "fingerprints.npz")
    config = validate_config({
        "base_model": "unused.nemo", "benchmark": {"corpus": str(corpus)}, "trials": {"names": []},
        "sources": {"quran_ayah_corpus": {"dataset": "unused", "splits": {"train": "train", "validation": "validation"}},
                    "retasy": {"dataset": str(datasets_dir / "retasy"), "splits": {"train": "train"},
                               "text_column": "Aya", "label_column": "final_label", "keep_labels": ["correct"]}},
    })
    report = prepare_source("retasy", config["sources"]["retasy"], config["data"], tmp_path / "prepared",
                            benchmark_index=tmp_path / "fingerprints.npz")
    retasy_clips = sum(s.source == "retasy" for s in load_samples(corpus))
    assert report["splits"]["train"]["dropped"]["leaked"] == retasy_clips == 6


@pytest.mark.parametrize("hold_out", [True, False])
def test_the_benchmark_speakers_other_recordings_are_kept_out_of_training(built, datasets_dir, tmp_path, hold_out):
    """The built corpus records each clip's speaker; a source naming its speaker column loses every
    row of those speakers (before decoding: the benchmark clips' own rows among them), unless the
    hold-out is turned off, when only the leakage guard's fingerprints catch the clips' own audio."""
    from quranft.data.benchmark_index import benchmark_speakers, build_index, write_index
    from quranft.data.prepare import prepare_source

    corpus, _ = built
    speakers = benchmark_speakers(corpus)
    retasy_speakers = {str(s.raw["speaker"]) for s in load_samples(corpus) if s.source == "retasy"}
    assert len(retasy_speakers) == 6 and retasy_speakers <= set(speakers)
    write_index(build_index(corpus)[0], tmp_path / "fingerprints.npz", speakers)
    config = validate_config({
        "base_model": "unused.nemo", "benchmark": {"corpus": str(corpus)}, "trials": {"names": []},
        "data": {"hold_out_benchmark_speakers": hold_out},
        "sources": {"quran_ayah_corpus": {"dataset": "unused", "splits": {"train": "train", "validation": "validation"}},
                    "retasy": {"dataset": str(datasets_dir / "retasy"), "splits": {"train": "train"},
                               "text_column": "Aya", "label_column": "final_label", "keep_labels": ["correct"],
                               "speaker_column": "reciter_id"}},
    })
    report = prepare_source("retasy", config["sources"]["retasy"], config["data"], tmp_path / "prepared",
                            benchmark_index=tmp_path / "fingerprints.npz")
    dropped = report["splits"]["train"]["dropped"]
    assert (dropped["benchmark_speaker"], dropped["leaked"]) == ((6, 0) if hold_out else (0, 6))
    assert report["speakers"] == ({"checked": True, "speaker_column": "reciter_id", "benchmark_speakers": len(speakers)}
                                  if hold_out else {"checked": False, "why": "data.hold_out_benchmark_speakers is false"})
    kept = {json.loads(line)["id"] for line in (tmp_path / "prepared" / "train.jsonl").read_text().splitlines()}
    assert len(kept) == report["splits"]["train"]["kept"]


def test_config_errors_name_the_key(datasets_dir):
    with pytest.raises(ConfigError, match="sources.1.multi.count' needs .*sources.1.speaker_column"):
        build_config(datasets_dir, speaker_column=None)
    with pytest.raises(ConfigError, match="sources.1.ayah_column' needs"):
        build_config(datasets_dir, ayah_column="ayah")
    with pytest.raises(ConfigError, match="'benchmark.build.sources.1.singles.huge' is unknown"):
        build_config(datasets_dir, singles={"huge": 1})
    with pytest.raises(ConfigError, match="names must differ"):
        build_config(datasets_dir, name="retasy")


def test_the_demo_data_builds_offline(tmp_path):
    """The demo's RetaSy-like parquet (Arabic surah names) and Quran-Ayah-Corpus-like folder."""
    from quranft.evaluation.build_corpus import build_corpus

    config = validate_config({
        "base_model": "unused.nemo", "trials": {"names": []},
        "sources": {"quran_ayah_corpus": {"dataset": "unused", "splits": {"train": "train", "validation": "validation"}}},
        "data": {"include_retasy": False},
        "benchmark": {"corpus": str(tmp_path / "corpus"), "build": {"sources": [
            {"name": "retasy", "dataset": str(DEMO / "retasy"), "split": "train", "text_column": "Aya",
             "surah_column": "Surah", "label_column": "final_label", "keep_labels": ["correct", None],
             "singles": {"short": 4, "medium": 2}},
        ]}},
    })
    report = build_corpus(config["benchmark"]["build"], tmp_path / "corpus")
    assert report["sources"]["retasy"]["picked"] == {"short": 4, "medium": 2, "long": 0, "multi": 0}
    assert report["sources"]["retasy"]["skipped"]["bad_label"] == 8


def demo_build_settings():
    return {"sources": [{
        "name": "retasy", "dataset": str(DEMO / "retasy"), "split": "train", "text_column": "Aya",
        "surah_column": "Surah", "label_column": "final_label", "keep_labels": ["correct"],
        "singles": {"short": 3, "medium": 1}}]}


@pytest.mark.slow
def test_the_workflow_builds_the_corpus_before_the_leakage_guard_and_the_benchmarks(tmp_path):
    from conftest import demo_config_file, planned_jobs, snakemake

    config = demo_config_file(tmp_path, benchmark={"corpus": "results/benchmark_corpus", "build": demo_build_settings()})
    planned = snakemake(tmp_path, "-n", "--configfile", str(config)).stdout
    assert planned_jobs(planned)["build_benchmark_corpus"] == 1
    for rule in ("index_benchmark", "benchmark_model"):
        block = planned.split(f"rule {rule}:")[1].split("\n\n")[0]
        assert "results/benchmark_corpus/manifest.json" in block.split("output:")[0]
    # the sessions' manifest is the build's output and the leakage guard's input
    assert "results/benchmark_corpus/sessions.json" in planned.split("rule index_benchmark:")[1].split("output:")[0]
    snakemake(tmp_path, "results/data/benchmark_fingerprints.npz", "-c1", "--configfile", str(config))
    samples = load_samples(tmp_path / "results" / "benchmark_corpus")
    assert len(samples) == 4 and all(s.source == "retasy" for s in samples)
    assert json.loads((tmp_path / "results" / "benchmark_corpus" / "sessions.json").read_text()) == {"sessions": []}
    assert (tmp_path / "results" / "data" / "benchmark_fingerprints.npz").is_file()


@pytest.mark.slow
def test_a_real_base_model_judged_on_the_synthetic_corpus_is_warned_about(tmp_path):
    from conftest import REPO, demo_config_file, snakemake
    from quranft.data.benchmark_corpus import synthetic_corpus_warning

    assert synthetic_corpus_warning(DEMO / "benchmark", str(DEMO / "base_model.nemo"), REPO) is None
    assert synthetic_corpus_warning(tmp_path, "nvidia/stt_ar_fastconformer_hybrid_large_pcd_v1.0", REPO) is None
    config = demo_config_file(tmp_path, base_model="nvidia/stt_ar_fastconformer_hybrid_large_pcd_v1.0")
    assert "WARNING: benchmark.corpus is the demo's synthetic corpus" in snakemake(
        tmp_path, "-n", "--configfile", str(config)).stderr


@pytest.mark.slow
def test_edits_of_the_build_and_the_asr_benchmark_replan_what_they_determine(tmp_path):
    """The README's rebuild rows for benchmark.build and asr_benchmark, on a finished demo run."""
    import yaml
    from test_asr_benchmark import audio_folder

    from conftest import demo_config_file, make_up_to_date, planned_jobs, snakemake

    config = demo_config_file(tmp_path, benchmark={"corpus": "results/benchmark_corpus", "build": demo_build_settings()},
                              asr_benchmark={"dataset": str(audio_folder(tmp_path / "asr")), "split": "train"})
    make_up_to_date(tmp_path, config)

    def plan_after(change):
        values = yaml.safe_load(config.read_text(encoding="utf-8"))
        change(values)
        config.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
        jobs = planned_jobs(snakemake(tmp_path, "-n", "--configfile", str(config)).stdout)
        snakemake(tmp_path, "--touch", "-c1", "--configfile", str(config))
        return jobs

    ship = {"leaderboard": 1, "best_model": 1, "model_card": 7}  # the leaderboard, best.json, the model cards
    assert plan_after(lambda v: v["asr_benchmark"].update(batch_size=3)) == {"asr_benchmark_model": 7, **ship, "all": 1}
    # a new ASR test set: its clips are in the leakage guard's index, so the data stage and training follow
    assert plan_after(lambda v: v["asr_benchmark"].update(max_rows=4)) == {
        "prepare_asr_benchmark": 1, "index_benchmark": 1, "prepare_quran_ayah_corpus": 1, "prepare_retasy": 1,
        "data_report": 1, "train_trial": 6, "resolve_trial": 3, "average_checkpoints": 6, "validation_curves": 1,
        "benchmark_model": 7, "asr_benchmark_model": 7, "export_model": 7, "benchmark_export": 7, "browser_check": 1,
        **ship, "all": 1}
    built = plan_after(lambda v: v["benchmark"]["build"].update(seed=1))
    assert built["build_benchmark_corpus"] == 1 and built["index_benchmark"] == 1
    assert built["benchmark_model"] == 7 and built["train_trial"] == 6 and "asr_benchmark_model" in built
    assert "pretrain_demo_base" not in built and "prepare_asr_benchmark" not in built

    # the ASR benchmark's code, on a copy of the workflow whose files keep their times: a change of
    # what a module of its closure does re-plans every model's ASR benchmark and what reads it (that
    # a comment or docstring re-plans nothing: tests/test_rebuilds.py, on the benchmark's code)
    import shutil

    from conftest import REPO
    from quranft.evaluation.code_versions import ASR_BENCHMARK, closure

    workflow = tmp_path / "workflow"
    workflow.mkdir()
    shutil.copy2(REPO / "Snakefile", workflow / "Snakefile")
    for name in ("rules", "src", "config", "profiles"):
        shutil.copytree(REPO / name, workflow / name, copy_function=shutil.copy2)
    shutil.copytree(REPO / "web", workflow / "web", copy_function=shutil.copy2,
                    ignore=shutil.ignore_patterns("node_modules"))  # the browser check's page, an input
    modules = closure(ASR_BENCHMARK)
    assert {"evaluation/asr_benchmark.py", "quran/arabic.py", "models/transcribe.py", "data/audio.py"} <= set(modules)
    code = workflow / "src" / "quranft" / "quran" / "arabic.py"  # in the closure, not the benchmark's own file
    code.write_text(code.read_text(encoding="utf-8") + "\n_EDITED = True\n", encoding="utf-8")
    jobs = planned_jobs(snakemake(tmp_path, "-n", "--configfile", str(config), snakefile=workflow / "Snakefile").stdout)
    assert jobs["asr_benchmark_model"] == 7 and jobs["leaderboard"] == 1
    assert "train_trial" not in jobs and "prepare_asr_benchmark" not in jobs


@pytest.mark.slow
def test_the_real_config_plans_the_corpus_build_before_the_benchmarks_offline():
    import subprocess
    import sys

    from conftest import REPO, planned_jobs

    result = subprocess.run([sys.executable, "-m", "snakemake", "-n"], cwd=REPO, capture_output=True, text=True,
                            timeout=300, env={"PATH": f"{sys.executable.rsplit('/', 1)[0]}:/usr/bin:/bin",
                                              "HF_HUB_OFFLINE": "1", "HOME": str(REPO / ".snakemake")})
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = planned_jobs(result.stdout)
    assert jobs["build_benchmark_corpus"] == 1 and jobs["prepare_asr_benchmark"] == 1
    assert jobs["asr_benchmark_model"] == jobs["benchmark_model"] == 7
    for rule in ("index_benchmark", "benchmark_model"):
        block = result.stdout.split(f"rule {rule}:")[1].split("output:")[0]
        assert "results/benchmark_corpus/manifest.json" in block
    assert "WARNING" not in result.stderr
