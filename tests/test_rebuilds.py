"""Rebuilds follow file timestamps: what a touched file or a config edit re-plans, and DAG drawings
of the plan."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import REPO, demo_config_file, planned_jobs, small_corpus, snakemake
from quranft.evaluation.code_versions import BENCHMARK, EXPORT, LONGFORM, closure

pytestmark = pytest.mark.slow


@pytest.fixture
def up_to_date(finished):
    """A copy of the finished demo workdir, with its own copy of the demo corpus (corpus/)."""
    workdir, config = finished
    return workdir, config, workdir / "corpus"


def plan(workdir, config):
    return planned_jobs(snakemake(workdir, "-n", "--configfile", str(config)).stdout)


# What follows every new benchmark: the leaderboard, the model to ship and every model's card.
SHIP = {"leaderboard": 1, "best_model": 1, "model_card": 7}
# A new model.nemo is exported again and its exports benchmarked (fp32 and int8, by one job per
# model); every model's export is redone when the validation clips its parity is measured on
# change. The base model's front end, which every export reuses, follows the base model alone.
# The demo judges continuous recitation on each model's int8 export (longform.formats): a new
# export is judged again; a new .nemo benchmark is not (the .nemo's threshold is not read). The
# browser check runs for v2's export alone in the demo (config/demo.yaml), and again whenever v2's
# export, the benchmark corpus, the benchmark's settings or the validation clips change.
BROWSER = {"browser_check": 1}
EXPORT_TRIALS = {"export_model": 6, "benchmark_export": 6, "benchmark_longform": 6, **BROWSER}
EXPORT_ALL = {"export_model": 7, "benchmark_export": 7, "benchmark_longform": 7, **BROWSER}


def test_nothing_touched_nothing_runs(up_to_date):
    workdir, config, _ = up_to_date
    assert plan(workdir, config) == {}


def test_touching_the_demo_corpus_reruns_everything_downstream(up_to_date):
    workdir, config, corpus = up_to_date
    os.utime(next((corpus / "quran_ayah_corpus" / "train").glob("*.arrow")))
    assert plan(workdir, config) == {
        "prepare_quran_ayah_corpus": 1, "data_report": 1, "train_trial": 6, "average_checkpoints": 6,
        "benchmark_model": 7, "resolve_trial": 3, "validation_curves": 1, **EXPORT_ALL, **SHIP, "all": 1,
    }  # not RetaSy, not the base model (the committed demo base is kept); the base's benchmark and
    # export are redone: the validation clips its confidence threshold and its parity are measured on changed


def test_touching_the_benchmark_manifest_reruns_the_benchmarks_and_nothing_upstream(up_to_date):
    workdir, config, corpus = up_to_date
    os.utime(corpus / "benchmark" / "manifest.json")
    # Every benchmark and nothing else: V4 to V6 are chosen by validation WER, not on this corpus.
    assert plan(workdir, config) == {"benchmark_model": 7, "benchmark_export": 7, **BROWSER, **SHIP, "all": 1}


def test_touching_a_benchmark_clip_also_redoes_the_leakage_guard(up_to_date):
    workdir, config, corpus = up_to_date
    os.utime(corpus / "benchmark" / "multi_114_001_006.wav")
    jobs = plan(workdir, config)
    assert jobs["index_benchmark"] == 1 and jobs["prepare_retasy"] == 1 and jobs["benchmark_model"] == 7


def test_touching_a_sessions_audio_redoes_the_leakage_guard(up_to_date):
    workdir, config, corpus = up_to_date
    os.utime(corpus / "benchmark" / "sessions" / "session_01.mp3")
    jobs = plan(workdir, config)
    assert jobs["index_benchmark"] == 1 and jobs["prepare_retasy"] == 1 and jobs["prepare_quran_ayah_corpus"] == 1


DATA_DOWN = {"prepare_quran_ayah_corpus": 1, "prepare_retasy": 1, "data_report": 1, "train_trial": 6,
             "resolve_trial": 3, "average_checkpoints": 6, "validation_curves": 1, "benchmark_model": 7, **SHIP,
             **EXPORT_ALL, "all": 1}
# Without the main corpus's validation clips changing: the trials' benchmarks and exports only.
RETASY_DOWN = {**DATA_DOWN, "prepare_quran_ayah_corpus": 0, "benchmark_model": 6, **EXPORT_TRIALS}


def _edit_comment_and_order(config, _tmp):
    text = config.read_text(encoding="utf-8")
    values = yaml.safe_load(text)
    reordered = dict(reversed(list(values.items())))
    config.write_text("# a comment\n" + yaml.safe_dump(reordered, allow_unicode=True, sort_keys=False),
                      encoding="utf-8")


def _other_base(values, workdir):
    # A copy that keeps the old file's time: only the config edit can re-plan anything.
    shutil.copy2(REPO / "demo" / "base_model.nemo", workdir / "other_base.nemo")
    values["base_model"] = str(workdir / "other_base.nemo")


def _other_corpus(values, workdir):
    # the corpus path may be relative to the working directory
    shutil.copytree(workdir / values["benchmark"]["corpus"], workdir / "other_corpus", copy_function=shutil.copy2)
    values["benchmark"]["corpus"] = str(workdir / "other_corpus")


# Each config edit and exactly the jobs it re-plans on a finished run.
EDITS = {
    "comment and key order": (None, {}),
    "data.min_duration": (lambda v, t: v.setdefault("data", {}).update(min_duration=0.7), DATA_DOWN),
    "a source's settings": (lambda v, t: v["sources"]["retasy"].update(keep_labels=["correct"]), RETASY_DOWN),
    "data.max_retasy_samples": (lambda v, t: v.setdefault("data", {}).update(max_retasy_samples=10), RETASY_DOWN),
    "base_model": (_other_base, {"base_model": 1, "train_trial": 6, "resolve_trial": 3, "average_checkpoints": 6,
                                 "validation_curves": 1, "benchmark_model": 7, "export_front_end": 1, **EXPORT_ALL,
                                 **SHIP, "all": 1}),
    # the license reaches the model cards only
    "base_model_license": (lambda v, t: v.update(base_model_license="other"), {"model_card": 7, "all": 1}),
    "trials.overrides.max_steps": (lambda v, t: v["trials"]["overrides"].update(max_steps=61),
                                   {"train_trial": 6, "resolve_trial": 3, "average_checkpoints": 6,
                                    "validation_curves": 1, "benchmark_model": 6, **EXPORT_TRIALS, **SHIP,
                                    "all": 1}),
    "averaging.mode": (lambda v, t: v.setdefault("averaging", {}).update(mode="always"),
                       {"average_checkpoints": 6, "benchmark_model": 6, **EXPORT_TRIALS, **SHIP, "all": 1}),
    # the .nemo benchmarks only: the exports' benchmarks have no batch-throughput pass
    "benchmark.batch_size": (lambda v, t: v["benchmark"].update(batch_size=3),
                             {"benchmark_model": 7, **SHIP, "all": 1}),
    "benchmark.matchers": (lambda v, t: v["benchmark"].update(matchers=["text", "ctc"], primary_matcher="text"),
                           {"benchmark_model": 7, "benchmark_export": 7, **BROWSER, **SHIP, "all": 1}),
    # the .nemo benchmarks only: an export has no RNNT head, its benchmark does not read the key
    "benchmark.decoders": (lambda v, t: v["benchmark"].update(decoders=["ctc", "rnnt"]),
                           {"benchmark_model": 7, **SHIP, "all": 1}),
    "benchmark.corpus": (_other_corpus, {"index_benchmark": 1, **DATA_DOWN, "benchmark_model": 7,
                                         **EXPORT_ALL}),
    # the exports and their benchmarks only (and what reads them); best.json lists the new format
    "export.formats": (lambda v, t: v["export"].update(formats=["fp32", "int8", "int4"]),
                       {**EXPORT_ALL, **SHIP, "all": 1}),
    "export.max_seconds": (lambda v, t: v["export"].update(max_seconds=30),
                           {**EXPORT_ALL, **SHIP, "all": 1}),
    # one more model's browser check, which the leaderboard reads; no export again
    "export.browser_models": (lambda v, t: v["export"].update(browser_models=["base", "v2"]),
                              {"browser_check": 1, **SHIP, "all": 1}),
    # a long-form setting: the long-form jobs only (and what reads them)
    "longform.chunk_seconds": (lambda v, t: v["longform"].update(chunk_seconds=0.25),
                               {"benchmark_longform": 7, **SHIP, "all": 1}),
    "longform.sessions": (lambda v, t: v["longform"].update(sessions=3), {"benchmark_longform": 7, **SHIP, "all": 1}),
    # the margin of the exports' bound: the leaderboard's Deployable table and best.json only
    "export.max_seqacc_loss": (lambda v, t: v.setdefault("export", {}).update(max_seqacc_loss=0.1), {**SHIP, "all": 1}),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_a_config_edit_replans_exactly_the_stages_it_determines(finished, edit, tmp_path):
    workdir, config = finished
    change, expected = EDITS[edit]
    if change is None:
        _edit_comment_and_order(config, tmp_path)
    else:
        values = yaml.safe_load(config.read_text(encoding="utf-8"))
        change(values, workdir)
        config.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
    assert plan(workdir, config) == {job: count for job, count in expected.items() if count}


def copied_workflow(tmp_path):
    """A copy of the workflow, its files' times kept, so that no test running beside this one sees
    an edit of its code."""
    workflow = tmp_path / "workflow"
    workflow.mkdir()
    shutil.copy2(REPO / "Snakefile", workflow / "Snakefile")
    for name in ("rules", "src", "config", "profiles"):
        shutil.copytree(REPO / name, workflow / name, copy_function=shutil.copy2)
    # the reference page, an input of the browser check (its node_modules are not)
    shutil.copytree(REPO / "web", workflow / "web", copy_function=shutil.copy2,
                    ignore=shutil.ignore_patterns("node_modules"))
    return workflow


def test_an_edit_of_the_scoring_code_rescores_only_when_it_changes_what_the_code_does(finished, tmp_path):
    """A docstring, a comment and a reformatting of a module that decides scores plan nothing; an
    edit of a constant in the same file re-plans every benchmark (the exports' and the long-form
    ones too), every export (the file is in the export's code too) and what reads them, never
    training; an edit of the long-form scoring re-plans the long-form benchmarks only; an edit of
    the export's graph code re-exports every model and the front end, and re-runs what reads the
    exports, not the .nemo benchmarks."""
    workdir, config = finished
    workflow = copied_workflow(tmp_path)

    def planned():
        return planned_jobs(snakemake(workdir, "-n", "--configfile", str(config),
                                      snakefile=workflow / "Snakefile").stdout)

    assert planned() == {}
    code = workflow / "src" / "quranft" / "models" / "nemo_models.py"
    assert "models/nemo_models.py" in closure(BENCHMARK)
    text = code.read_text(encoding="utf-8")
    docstring = '"""A .nemo of another kind of model; the message names the file."""'
    constant = 'BASE_CLASS = "nemo.collections.asr.models.hybrid_rnnt_ctc_bpe_models.EncDecHybridRNNTCTCBPEModel"'
    assert docstring in text and constant in text
    code.write_text(text.replace(docstring, '"""Another kind of model\'s .nemo (the message names it)."""')
                    .replace(constant, f"# what NeMo calls the hybrid model\n{constant.replace(' = ', '  =  ')}\n\n"),
                    encoding="utf-8")
    assert planned() == {}
    code.write_text(text.replace(constant, constant.replace("BPEModel", "Model")), encoding="utf-8")
    # the long-form benchmark loads models through it too, and the export reads the .nemo by it
    assert planned() == {"benchmark_model": 7, **EXPORT_ALL, **SHIP, "all": 1}
    code.write_text(text, encoding="utf-8")
    # the long-form scoring decides the long-form figures alone: its jobs only, no clip benchmark
    scoring = workflow / "src" / "quranft" / "evaluation" / "longform_scoring.py"
    assert "evaluation/longform_scoring.py" in closure(LONGFORM) and "evaluation/longform_scoring.py" not in \
        closure(BENCHMARK)
    source = scoring.read_text(encoding="utf-8")
    assert "    edits = Levenshtein.distance(" in source
    scoring.write_text(source.replace("    edits = Levenshtein.distance(", "    edits = 0 + Levenshtein.distance("),
                       encoding="utf-8")
    assert planned() == {"benchmark_longform": 7, **SHIP, "all": 1}
    scoring.write_text(source, encoding="utf-8")
    # what the graph does: every export and the front end they reuse, and what reads the exports
    graph = workflow / "src" / "quranft" / "deploy" / "graph.py"
    assert "deploy/graph.py" in closure(EXPORT) and "deploy/graph.py" not in closure(BENCHMARK) + closure(LONGFORM)
    source = graph.read_text(encoding="utf-8")
    assert "\nOPSET = 18\n" in source
    graph.write_text(source.replace("\nOPSET = 18\n", "\nOPSET = 17\n"), encoding="utf-8")
    assert planned() == {"export_front_end": 1, **EXPORT_ALL, **SHIP, "all": 1}


def test_a_dry_run_after_an_edit_plans_exactly_what_the_run_does(tmp_path):
    """On a real run: the data stage (its leakage guard on an eight-clip benchmark corpus), then an
    edit of its settings and a touched benchmark clip; the dry run's job table equals the one the
    real run then reports (what each edit alone plans: test_a_config_edit_replans_exactly_... and
    test_touching_a_benchmark_clip_also_redoes_the_leakage_guard)."""
    corpus = small_corpus(tmp_path / "corpus")
    config = demo_config_file(tmp_path, benchmark={"corpus": str(corpus), "threshold_clips": 4})
    target = "results/data/report.json"
    snakemake(tmp_path, target, "-c2", "--configfile", str(config))
    values = yaml.safe_load(config.read_text(encoding="utf-8"))
    values.setdefault("data", {})["min_duration"] = 0.7
    config.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
    os.utime(next(corpus.glob("*.wav")))
    planned = planned_jobs(snakemake(tmp_path, target, "-n", "--configfile", str(config)).stdout)
    run = snakemake(tmp_path, target, "-c2", "--configfile", str(config))
    assert planned == planned_jobs(run.stdout + run.stderr) == {
        "index_benchmark": 1, "prepare_quran_ayah_corpus": 1, "prepare_retasy": 1, "data_report": 1}


@pytest.mark.parametrize("kind", ["dag", "rulegraph"])
@pytest.mark.parametrize("configs", [[], ["--configfile", "config/demo.yaml"]], ids=["real", "demo"])
def test_the_dag_and_rule_graph_render_to_svg(tmp_path, kind, configs):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    graph = subprocess.run([sys.executable, "-m", "snakemake", f"--{kind}", *configs], cwd=REPO, env=env,
                           capture_output=True, text=True, check=True, timeout=300).stdout
    graph = graph[graph.index("digraph"):]
    svg = subprocess.run(["dot", "-Tsvg"], input=graph, capture_output=True, text=True, check=True).stdout
    assert svg.lstrip().startswith(("<?xml", "<svg")) and "</svg>" in svg
    for rule in ("prepare_quran_ayah_corpus", "train_trial", "average_checkpoints", "benchmark_model", "leaderboard"):
        assert rule in svg
    (tmp_path / f"{kind}.svg").write_text(svg, encoding="utf-8")
