"""Shared fixtures: tones and speech-like audio, small datasets on disk, Snakemake runs in a tmp dir."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "demo"
sys.path.insert(0, str(REPO / "src"))


def synth(seconds: float, rate: int = 16000, seed: int = 0, channels: int = 1) -> np.ndarray:
    """Speech-like test audio: a random melody of harmonic tones with syllable-rate loudness."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    out = np.zeros(n, np.float32)
    step = int(0.12 * rate)
    for start in range(0, n, step):
        f0 = rng.uniform(110, 260)
        seg = slice(start, min(n, start + step))
        for harmonic in range(1, 8):
            out[seg] += np.sin(2 * np.pi * f0 * harmonic * t[seg] + rng.uniform(0, 6)) / harmonic
    out *= 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    out = (0.4 * out / np.abs(out).max()).astype(np.float32)
    if channels == 2:
        return np.stack([out, 0.5 * out], axis=1)
    return out


def encoded(samples: np.ndarray, rate: int = 16000, fmt: str = "FLAC") -> bytes:
    buffer = io.BytesIO()
    subtype = {"WAV": "PCM_16", "FLAC": "PCM_16", "MP3": "MPEG_LAYER_III", "OGG": "VORBIS"}[fmt]
    sf.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def save_dataset(path: Path, splits: dict[str, list[dict]], fmt: str = "disk") -> Path:
    """Write rows ({audio: bytes, text, ...}) as a save_to_disk folder or HF-layout parquet files."""
    import datasets

    def build(rows):
        columns = [k for k in rows[0] if k != "audio"]
        table = {"audio": [{"bytes": r["audio"], "path": None} for r in rows]}
        table.update({k: [r[k] for r in rows] for k in columns})
        features = datasets.Features(
            {"audio": {"bytes": datasets.Value("binary"), "path": datasets.Value("string")},
             **{k: datasets.Value("string") for k in columns}}
        )
        return datasets.Dataset.from_dict(table, features=features).cast_column("audio", datasets.Audio())

    if fmt == "disk":
        datasets.DatasetDict({s: build(r) for s, r in splits.items()}).save_to_disk(str(path))
    else:
        (path / "data").mkdir(parents=True)
        for split, rows in splits.items():
            build(rows).to_parquet(str(path / "data" / f"{split}-00000-of-00001.parquet"))
    return path


def data_config(**data) -> dict:
    """A validated config for a single local main-corpus source, with `data` overrides."""
    from quranft.config import validate_config

    return validate_config({
        "base_model": "unused.nemo",
        "benchmark": {"corpus": str(DEMO / "benchmark")},
        "sources": {"quran_ayah_corpus": {"dataset": "unused", "splits": {"train": "train", "validation": "validation"}}},
        "data": {"include_retasy": False, **data},
        "trials": {"names": []},
    })


# Every job of the tests' workflows on one thread, as make demo runs them: the suite's workers
# run side by side on two cores, and jobs of two or four threads each (OMP_NUM_THREADS follows
# them) oversubscribed the cores (a test's workflow took 300 s beside the others, 61 s alone).
ONE_THREAD = [f"{rule}=1" for rule in ("prepare_quran_ayah_corpus", "prepare_retasy", "pretrain_demo_base",
                                       "train_trial", "average_checkpoints", "benchmark_model",
                                       "asr_benchmark_model", "export_model", "benchmark_export",
                                       "benchmark_longform")]


# Whether the running test is marked slow, set before its fixtures (the session's too) are made.
_SLOW = {"marked": True}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    _SLOW["marked"] = item.get_closest_marker("slow") is not None


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 900,
              snakefile: Path = REPO / "Snakefile") -> subprocess.CompletedProcess:
    """Run the repository's workflow (or the one of `snakefile`) with `workdir` as its working
    directory. Only tests marked slow run Snakemake: `make test-fast` (-m "not slow") runs none."""
    if not _SLOW["marked"]:
        raise AssertionError("this test runs Snakemake: mark it @pytest.mark.slow (make test-fast runs no Snakemake)")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    if "--set-threads" not in args:
        args = (*args, "--set-threads", *ONE_THREAD)
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(snakefile), "-d", str(workdir), *args],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def demo_config_file(workdir: Path, **overrides) -> Path:
    """config/demo.yaml with its relative paths made absolute (the workflow runs in `workdir`)."""
    config = yaml.safe_load((REPO / "config" / "demo.yaml").read_text(encoding="utf-8"))
    for source in [*config["sources"].values(), config["demo_base"]["source"]]:
        source["dataset"] = str(REPO / source["dataset"])
    config["benchmark"]["corpus"] = str(REPO / config["benchmark"]["corpus"])
    config["trials"]["dir"] = str(REPO / "config" / "trials")
    # the browser check planned (for demo.yaml's export.browser_models) whether or not this machine
    # has Chromium (auto), so that the plans the tests expect are every machine's
    config.setdefault("export", {})["browser"] = True
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key].update(value)
        else:
            config[key] = value
    path = workdir / "demo.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def small_corpus(folder: Path, count: int = 8, files: set[str] | None = None) -> Path:
    """The demo benchmark corpus's first `count` clips (or those of `files`), as a corpus of its own
    in `folder`: for the tests that run a workflow or a benchmark through a few of its clips."""
    import json
    import shutil

    manifest = json.loads((DEMO / "benchmark" / "manifest.json").read_text(encoding="utf-8"))
    samples = manifest["samples"]
    manifest["samples"] = [s for s in samples if s["file"] in files] if files is not None else samples[:count]
    folder.mkdir(parents=True)
    for sample in manifest["samples"]:
        shutil.copy2(DEMO / "benchmark" / sample["file"], folder / sample["file"])
    (folder / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    return folder


def planned_jobs(output: str) -> dict[str, int]:
    """The job counts of a dry run's 'Job stats' table ({} when nothing is to be done)."""
    if "Job stats:" not in output:
        return {}
    lines = output.split("Job stats:")[1].split("\n\n")[0].splitlines()[3:]
    return {line.split()[0]: int(line.split()[1]) for line in lines if line.strip() and line.split()[0] != "total"}


def make_up_to_date(workdir: Path, config: Path) -> None:
    """Every output of the workflow present and newer than its inputs, without running anything:
    empty files where the dry run plans outputs, then Snakemake's --touch in dependency order."""
    first = snakemake(workdir, "-n", "--configfile", str(config))
    outputs = [line.split("output: ", 1)[1] for line in first.stdout.splitlines() if line.strip().startswith("output: ")]
    for path in (p.strip() for line in outputs for p in line.split(",")):
        (workdir / path).parent.mkdir(parents=True, exist_ok=True)
        (workdir / path).touch()
    snakemake(workdir, "--touch", "-c1", "--configfile", str(config))
    assert "Nothing to be done" in snakemake(workdir, "-n", "--configfile", str(config)).stdout


def finished_copy(finished: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    """A copy of a finished workdir and its config for one test, the files' times kept."""
    import shutil

    workdir = shutil.copytree(finished[0], tmp_path / "workdir", copy_function=shutil.copy2, symlinks=True)
    return workdir, workdir / finished[1].name


def shared(tmp_path_factory, name: str, build) -> Path:
    """A folder built once for the whole test session by `build(folder)`, whichever pytest-xdist
    worker asks first; the others wait for it (a file lock) and reuse it. Tests only read it, or
    copy it (finished_copy) to change it."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the session's folder, above each worker's own
    folder, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if not done.exists():
            if folder.exists():
                import shutil

                shutil.rmtree(folder)  # a build that failed in another worker
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def demo_data_stage(tmp_path_factory) -> Path:
    """The demo's data stage, run once through Snakemake; returns the working directory."""
    def build(workdir):
        config = demo_config_file(workdir)
        snakemake(workdir, "results/data/report.json", "--cores", "2", "--configfile", str(config))

    return shared(tmp_path_factory, "demo-data", build)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    """A randomly initialised 4-layer FastConformer hybrid with a SentencePiece tokenizer, as .nemo."""
    def build(work):
        from quranft.models import nemo_models
        from quranft.quran import tanzil

        tokenizer = nemo_models.train_tokenizer(tanzil.verses("simple").values(), work / "tokenizer", 64)
        config = nemo_models.tiny_hybrid_config(tokenizer, d_model=32, n_layers=4, n_heads=2, pred_hidden=32,
                                                joint_hidden=32)
        model = nemo_models.CTCOnlyHybridModel(cfg=config)
        nemo_models.save(model, work / "model.nemo")

    return shared(tmp_path_factory, "tiny-base", build) / "model.nemo"


def finished_demo_config(workdir: Path) -> Path:
    """config/demo.yaml for a working directory that holds its own copies of the demo's main
    corpus, benchmark corpus and trial files, named by relative paths (corpus/..., trials/), so
    that a copy of the folder (finished_copy) is a working directory of its own whose files a test
    may touch or edit."""
    import shutil

    corpus = workdir / "corpus"
    shutil.copytree(DEMO / "quran_ayah_corpus", corpus / "quran_ayah_corpus")
    shutil.copytree(DEMO / "benchmark", corpus / "benchmark")
    shutil.copytree(REPO / "config" / "trials", workdir / "trials")
    config = demo_config_file(workdir, benchmark={"corpus": "corpus/benchmark"},
                              trials={"dir": "trials"})
    values = yaml.safe_load(config.read_text(encoding="utf-8"))
    values["sources"]["quran_ayah_corpus"]["dataset"] = "corpus/quran_ayah_corpus"
    config.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
    return config


@pytest.fixture(scope="session")
def finished_demo(tmp_path_factory) -> tuple[Path, Path]:
    """A demo working directory whose every output is up to date (make_up_to_date), made once for
    the session; (the folder, its config). Tests change copies of it (finished_copy)."""
    def build(workdir):
        make_up_to_date(workdir, finished_demo_config(workdir))

    workdir = shared(tmp_path_factory, "finished-demo", build)
    return workdir, workdir / "demo.yaml"


@pytest.fixture
def finished(finished_demo, tmp_path) -> tuple[Path, Path]:
    """A test's own copy of the finished demo working directory, the files' times kept."""
    return finished_copy(finished_demo, tmp_path)


PARITY_CLIPS = ["everyayah_001_001.mp3", "retasy_001_002.mp3", "user_103_003.m4a", "user_108_003.m4a",
                "everyayah_110_003.mp3", "everyayah_001_004.wav", "user_103_001.m4a", "multi_114_001_006.wav"]


@pytest.fixture(scope="session")
def demo_base_export(tmp_path_factory) -> tuple[Path, Path]:
    """The committed demo base exported in every format, its parity measured on eight demo
    benchmark clips of every container; returns (the export folder, the clips' manifest)."""
    import json

    def build(work):
        from quranft.deploy.export import export_model

        manifest = work / "clips.jsonl"
        manifest.write_text("".join(json.dumps({"id": name, "audio_filepath": str(DEMO / "benchmark" / name)}) + "\n"
                                    for name in PARITY_CLIPS), encoding="utf-8")
        export_model(DEMO / "base_model.nemo", work / "export", ["fp32", "int8", "int4"], manifest, threads=2)

    work = shared(tmp_path_factory, "demo-export", build)
    return work / "export", work / "clips.jsonl"


# The test files that take longest, longest first (measured with `pytest --durations`): pytest-xdist
# hands each worker a file at a time in this order (--no-loadscope-reorder), so that the two
# workers end together instead of one waiting on the Slurm run at the end.
LONGEST_FIRST = ["test_slurm.py", "test_train_resume.py", "test_demo_shift.py", "test_train.py", "test_real_size.py",
                 "test_rebuilds.py", "test_plans.py", "test_identify.py", "test_build_corpus.py", "test_browser.py",
                 "test_longform.py", "test_demo_corpus.py", "test_average.py", "test_build_sessions.py"]


def pytest_collection_modifyitems(config, items):
    def rank(item):
        name = Path(str(item.fspath)).name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the tests of a file keep their order
