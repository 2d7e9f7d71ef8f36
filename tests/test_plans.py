"""Plans that tell the truth: planning or drawing changes no file of the working directory, a dry
run plans what a run of that config would do, and a config naming a missing file stops at parse
time; a file given as a .nemo that is not one is refused in one line by every command."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import DEMO, REPO, demo_config_file, planned_jobs, snakemake

pytestmark = pytest.mark.slow

# Every command that only plans or draws.
PLANNING = [["-n"], ["--dag"], ["--rulegraph"], ["--filegraph"], ["--summary"], ["--detailed-summary"],
            ["--lint"], ["--list-changes", "params"], ["--list-changes", "input"], ["--list-changes", "code"]]


def state(workdir: Path) -> dict[str, tuple[int, str]]:
    """Every file of the working directory outside Snakemake's own folder: its time and hash."""
    return {str(path.relative_to(workdir)): (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
            for path in sorted(workdir.rglob("*")) if path.is_file() and ".snakemake" not in path.parts}


def edited(config: Path, name: str, change) -> Path:
    """A copy of `config` beside it with `change` applied to its values."""
    values = yaml.safe_load(config.read_text(encoding="utf-8"))
    change(values)
    path = config.with_name(name)
    path.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
    return path


def plan(workdir: Path, *args: str) -> dict[str, int]:
    return planned_jobs(snakemake(workdir, "-n", *args).stdout)


def test_planning_and_drawing_change_no_file_of_the_working_directory(finished):
    """Every planning and drawing command with an edited config (jobs to re-run: where the most
    could be written); a dry run and a drawing with the real config (nothing of it here: the Hub's
    ids) and with the finished demo's (nothing to do). What runs at parse time is the same for
    every command, so these two configs need not go through all ten."""
    workdir, config = finished
    always = edited(config, "always.yaml", lambda v: v.setdefault("averaging", {}).update(mode="always"))
    before = state(workdir)
    runs = [(command, ["--configfile", str(always)]) for command in PLANNING]
    runs += [(command, configs) for configs in ([], ["--configfile", str(config)]) for command in (["-n"], ["--dag"])]
    for command, configs in runs:
        snakemake(workdir, *command, *configs)
        assert state(workdir) == before, (command, configs)


def test_the_readmes_sequence_plans_nothing_the_second_time(finished):
    """make demo, then the real run's plan and its drawing, then the demo's plan again."""
    workdir, config = finished
    assert plan(workdir) != {}  # the real run's plan: everything, from the Hub
    snakemake(workdir, "--dag")
    assert plan(workdir, "--configfile", str(config)) == {}


def test_a_preview_of_an_edit_then_the_unedited_plan_plans_nothing(finished):
    workdir, config = finished
    always = edited(config, "always.yaml", lambda v: v.setdefault("averaging", {}).update(mode="always"))
    assert plan(workdir, "--configfile", str(always)) == {"average_checkpoints": 6, "benchmark_model": 6,
                                                          "export_model": 6, "benchmark_export": 6,
                                                          "benchmark_longform": 6, "browser_check": 1,
                                                          "leaderboard": 1, "best_model": 1, "model_card": 7,
                                                          "all": 1}
    assert plan(workdir, "--configfile", str(always)) != {}  # a second preview plans it again
    assert plan(workdir, "--configfile", str(config)) == {}


def test_after_a_run_of_the_edited_config_the_unedited_one_plans_the_edited_stages_again(finished):
    """A real run of the edited config's base model records its settings; the unedited config then
    plans the base model and what follows from it, as the README's rebuild table says."""
    workdir, config = finished
    other = shutil.copy2(DEMO / "base_model.nemo", workdir / "other_base.nemo")
    edited_config = edited(config, "other_base.yaml", lambda v: v.update(base_model=str(other)))
    snakemake(workdir, "results/base/model.nemo", "-c1", "--configfile", str(edited_config))
    assert plan(workdir, "results/base/model.nemo", "--configfile", str(edited_config)) == {}
    assert plan(workdir, "--configfile", str(config)) == {
        "base_model": 1, "train_trial": 6, "resolve_trial": 3, "average_checkpoints": 6, "validation_curves": 1,
        "benchmark_model": 7, "export_front_end": 1, "export_model": 7, "benchmark_export": 7, "benchmark_longform": 7,
        "browser_check": 1, "leaderboard": 1, "best_model": 1,
        "model_card": 7, "all": 1}


MISSING = {
    "base_model": lambda v, gone: v.update(base_model=str(gone / "x.nemo")),
    "sources.quran_ayah_corpus.dataset": lambda v, gone: v["sources"]["quran_ayah_corpus"].update(dataset=str(gone)),
    "sources.retasy.dataset": lambda v, gone: v["sources"]["retasy"].update(dataset=str(gone / "train.parquet")),
    "benchmark.corpus": lambda v, gone: v["benchmark"].update(corpus=str(gone)),
    "trials.dir": lambda v, gone: v["trials"].update(dir=str(gone)),
    "demo_base.source.dataset": lambda v, gone: v["demo_base"]["source"].update(dataset=str(gone)),
    "asr_benchmark.dataset": lambda v, gone: v.update(asr_benchmark={"dataset": str(gone), "split": "train"}),
    "benchmark.build.sources[0].dataset": lambda v, gone: v["benchmark"].update(
        corpus=str(gone.parent / "built"), build={"sources": [{"name": "r", "dataset": str(gone / "r.parquet"),
                                                                "split": "train", "text_column": "text"}]}),
}


@pytest.mark.parametrize("key", list(MISSING))
def test_a_missing_local_path_stops_even_a_dry_run_naming_the_key(tmp_path, key):
    gone = tmp_path / "missing"
    config = demo_config_file(tmp_path)
    values = yaml.safe_load(config.read_text(encoding="utf-8"))
    MISSING[key](values, gone)
    config.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
    result = snakemake(tmp_path, "-n", "--configfile", str(config), check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    expected = "config key 'benchmark.corpus': " if key == "benchmark.corpus" else f"config key '{key}': {gone}"
    assert expected in output and output.count(expected) == 1, output[-3000:]
    assert "does not exist" in output
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".snakemake") == ["demo.yaml"]  # nothing written


def test_a_hub_id_is_not_taken_for_a_missing_path():
    from quranft.config import is_hub_id

    assert is_hub_id("rabah2026/Quran-Ayah-Corpus") and is_hub_id("nvidia/stt_ar_fastconformer_hybrid_large_pcd_v1.0")
    assert not any(is_hub_id(value) for value in ("/data/x", "./a/b", "../corpus", "~/x", "a/b/c", "x.nemo",
                                                   "data/train.parquet"))


def not_nemo_files(tmp_path: Path) -> dict[str, Path]:
    data = (DEMO / "base_model.nemo").read_bytes()
    (tmp_path / "truncated.nemo").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.nemo").write_text("not an archive", encoding="utf-8")
    return {"truncated": tmp_path / "truncated.nemo", "not an archive": tmp_path / "text.nemo"}


def quranft(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "quranft", *args], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(REPO / "src")), cwd=REPO)


def test_a_file_that_is_not_a_nemo_archive_gets_one_line_from_every_command_that_opens_one(tmp_path):
    configs = ["--config", str(REPO / "config" / "config.yaml"), str(REPO / "config" / "demo.yaml")]
    transcripts = tmp_path / "transcripts.jsonl"
    transcripts.write_text('{"id": "everyayah_112_002", "text": "x"}\n', encoding="utf-8")
    for kind, bad in not_nemo_files(tmp_path).items():
        out = tmp_path / kind.replace(" ", "_")
        commands = {
            "benchmark": ["benchmark", *configs, "--model", str(bad), "--name", "x", "--output", str(out / "b.json")],
            "average": ["average", *configs, "--trial", "v1", "--trial-dir", str(out), "--base-model", str(bad)],
            "rescore": ["rescore", "--corpus", str(DEMO / "benchmark"), "--transcripts", str(transcripts),
                        "--matcher", "ctc", "--log-probs", str(tmp_path / "none.npz"), "--tokenizer-from", str(bad),
                        "--output", str(out / "r.json")],
        }
        for name, command in commands.items():
            result = quranft(*command)
            assert result.returncode == 1, (kind, name, result.stderr[-2000:])
            errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
            assert len(errors) == 1 and f" ERROR {bad}: not a .nemo archive (" in errors[0], (kind, name, errors)
            assert "Traceback" not in result.stderr, (kind, name)
            assert not out.exists() or not any(out.iterdir()), (kind, name)  # nothing written


def test_the_base_model_rule_refuses_a_file_that_is_not_a_nemo_archive_in_one_line(tmp_path):
    bad = not_nemo_files(tmp_path)["truncated"]
    config = demo_config_file(tmp_path, base_model=str(bad))
    result = snakemake(tmp_path, "results/base/model.nemo", "-c1", "--configfile", str(config), check=False)
    log = (tmp_path / "logs" / "train" / "base_model.log").read_text(encoding="utf-8")
    assert result.returncode != 0 and not (tmp_path / "results" / "base" / "model.nemo").exists()
    assert f"ERROR {bad}: not a .nemo archive (unexpected end of data)" in log and "Traceback" not in log
