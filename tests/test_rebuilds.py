"""Rebuilds follow file timestamps: what a touched file re-plans, and DAG drawings of the plan."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, demo_config_file, make_up_to_date, planned_jobs, snakemake

pytestmark = pytest.mark.slow


@pytest.fixture
def up_to_date(tmp_path):
    """A demo workdir whose every output is up to date, with its own copy of the demo corpus."""
    corpus = tmp_path / "corpus"
    shutil.copytree(REPO / "demo" / "quran_ayah_corpus", corpus / "quran_ayah_corpus")
    shutil.copytree(REPO / "demo" / "benchmark", corpus / "benchmark")
    config = demo_config_file(tmp_path, sources={"quran_ayah_corpus": {"dataset": str(corpus / "quran_ayah_corpus")}},
                              benchmark={"corpus": str(corpus / "benchmark")})
    make_up_to_date(tmp_path, config)
    return tmp_path, config, corpus


def plan(workdir, config):
    return planned_jobs(snakemake(workdir, "-n", "--configfile", str(config)).stdout)


def test_nothing_touched_nothing_runs(up_to_date):
    workdir, config, _ = up_to_date
    assert plan(workdir, config) == {}


def test_touching_the_demo_corpus_reruns_everything_downstream(up_to_date):
    workdir, config, corpus = up_to_date
    os.utime(next((corpus / "quran_ayah_corpus" / "train").glob("*.arrow")))
    assert plan(workdir, config) == {
        "prepare_quran_ayah_corpus": 1, "blend_manifests": 1, "train_trial": 6, "average_checkpoints": 6,
        "benchmark_model": 6, "resolve_trial": 3, "leaderboard": 1, "all": 1,
    }  # not RetaSy, not the base model (the committed demo base is kept), not the base's benchmark


def test_touching_the_benchmark_manifest_reruns_the_benchmarks_and_nothing_upstream(up_to_date):
    workdir, config, corpus = up_to_date
    os.utime(corpus / "benchmark" / "manifest.json")
    # Every benchmark; and V4 to V6, which start from the best of V1 to V3 by benchmark, are chosen
    # again and retrained. No data stage, no base model, no V1 to V3 training.
    assert plan(workdir, config) == {"benchmark_model": 7, "resolve_trial": 3, "train_trial": 3,
                                     "average_checkpoints": 3, "leaderboard": 1, "all": 1}


def test_touching_a_benchmark_clip_also_redoes_the_leakage_guard(up_to_date):
    workdir, config, corpus = up_to_date
    os.utime(corpus / "benchmark" / "multi_114_001_006.wav")
    jobs = plan(workdir, config)
    assert jobs["fingerprint_benchmark"] == 1 and jobs["prepare_retasy"] == 1 and jobs["benchmark_model"] == 7


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
