# Shared helpers: config validation, output paths, and the inputs derived from the config.

import json
import os
import sys
from pathlib import Path

SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, SRC)
# Jobs (local, or submitted to Slurm, which exports the environment) import quranft from src/ too.
os.environ.update(PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p))

from quranft.config import check_local_paths, is_hub_id, validate_config
from quranft.data.benchmark_corpus import audio_files as benchmark_audio_files, check_build_target, synthetic_corpus_warning
from quranft.data.sessions import SESSIONS_MANIFEST, session_audio_files
from quranft.data.sources import local_files
from quranft.evaluation.code_versions import (ASR_BENCHMARK, BENCHMARK, EXPORT, FRONT_END_EXPORT, LONGFORM, module_hashes,
                                             save_cache, use_cache)
from quranft.fileio import holds_json, read_json, write_canonical_json
from quranft.models.browser import chromium_available
from quranft.models.onnx_model import EXPORT_FILES
from quranft.training.curves import METRICS_CSV
from quranft.training.trials import candidate_scores_file, data_stage_caps, load_trial

validate_config(config)
DEMO_BASE = "demo/base_model.nemo"  # the demo's stand-in base model, made by the rule pretrain_demo_base
# Trial files belong to the workflow: found relative to the working directory, else to the workflow.
if not os.path.isdir(config["trials"]["dir"]) and not os.path.isabs(config["trials"]["dir"]):
    config["trials"]["dir"] = os.path.join(workflow.basedir, config["trials"]["dir"])
# Every local file or folder the config names exists, or no run starts (dry runs included): a
# missing input would leave old outputs standing as up to date.
check_local_paths(config, made_by_rules=(DEMO_BASE,))
if config["benchmark"]["build"]:
    check_build_target(config["benchmark"]["corpus"])
if warning := synthetic_corpus_warning(config["benchmark"]["corpus"], config["base_model"], workflow.basedir):
    print(warning, file=sys.stderr)

DATA = "results/data"
# the main corpus's validation clips: export parity and each model's confidence threshold
VALIDATION_MANIFEST = f"{DATA}/quran_ayah_corpus/validation.jsonl"
ASR_SET = "results/asr_benchmark"  # the ASR test set, decoded once for every model
SETTINGS = "results/settings"  # the settings the jobs of the last executing run used
SCRATCH_SETTINGS = ".snakemake/quranft/settings"  # changed settings, until a run executes jobs with them
UNRECORDED = {}  # scratch settings file -> the file that records it
TRIALS = {
    name: load_trial(config["trials"]["dir"], name, config["trials"]["overrides"])
    for name in config["trials"]["names"]
}
TRIAL_PATTERN = "|".join(TRIALS) or "(?!)"
BEST_OF_PATTERN = "|".join(name for name, trial in TRIALS.items() if trial.best_of) or "(?!)"
MODELS = ["base", *TRIALS]
# The data stage prepares the most rows any trial asks for (the config's numbers are ceilings).
DATA_CAPS = data_stage_caps(config["data"], TRIALS, config["trials"]["dir"], config["trials"]["overrides"])
MODEL_PATTERN = "|".join(MODELS)
VALIDATION_CURVES = "results/validation_wer.png"  # every trial's validation WER on one plot
# The formats each model is exported in (export.formats); best.json lists the chosen model's.
EXPORT_FORMATS = config["export"]["formats"]
FRONT_END = "results/base/front_end.onnx"  # the base model's front end, which the exports reuse
# The trials' chain (data stage, V1 to V3, then V4 to V6, which extend the best of them) is the
# workflow's longest: when cores are short its jobs go first, and the benchmarks and exports of
# the models already trained fill the cores beside it instead of delaying it.
TRAINING_PRIORITY = 10


def settings_file(name, **sections):
    """The config sections one job reads, as a JSON file that is an input of the job and that it
    reads its settings from (--settings). Rebuilds stay driven by file timestamps (rerun-triggers:
    mtime): a config edit re-runs exactly the jobs that read what changed, and a comment or the
    key order changes nothing.

    results/settings/<name>.json records the settings the last run that executed jobs used. When
    the config's sections equal it, it is the input. When they differ (or nothing is recorded),
    the input is a scratch copy in Snakemake's own folder, written anew at every parse so that it
    is newer than every output: the plan re-runs what reads it, and a dry run, --dag or --summary
    changes no file of the working directory. A run that executes jobs records the scratch
    settings of its jobs before the first job starts (record_settings, onstart)."""
    recorded = f"{SETTINGS}/{name}.json"
    if holds_json(recorded, sections):
        return recorded
    scratch = f"{SCRATCH_SETTINGS}/{name}.json"
    write_canonical_json(scratch, sections)
    UNRECORDED[scratch] = recorded
    return scratch


def code_record(name, module):
    """What a benchmark's code does, as a settings file (settings_file): the hash of each module of
    `module`'s closure, normalised so that docstrings, comments and formatting do not count. An
    edit that changes what the code does re-plans the jobs that read the record; one that does not
    leaves the recorded file and its time as they were, and re-plans nothing."""
    return settings_file(name, code=module_hashes(module))


# What each module's text hashes to, kept between parses (only an edited module is parsed again).
use_cache(".snakemake/quranft/code_hashes.json")
# The verse benchmark's code record, read by the .nemo benchmarks and the exports' benchmarks alike
# (hashed once a parse).
BENCHMARK_CODE = code_record("benchmark_code", BENCHMARK)
# The long-form benchmark's: editing its scoring or streaming re-runs the long-form jobs only.
LONGFORM_CODE = code_record("longform_code", LONGFORM)
# The exports' (rules/export.smk): an edit of what the graph, its quantization or its recorded
# parity and threshold do re-exports every model; the front end's, of the graph module's closure.
EXPORT_CODE = code_record("export_code", EXPORT)
FRONT_END_CODE = code_record("front_end_code", FRONT_END_EXPORT)
# The browser check's (rules/export.smk): the benchmark's closure and the check's own code.
BROWSER_CODE = code_record("browser_code", "quranft.evaluation.browser_check")
save_cache()
# The reference page's files, which the browser check runs (an edit re-runs the checks).
WEB_PAGE = ("index.html", "app.js", "audio.js", "cache.js", "model.js", "package-lock.json")


def record_settings():
    """Record the settings of the jobs this run executes (onstart: a real run, never a dry run)."""
    used = {str(path) for job in workflow.dag.jobs for path in job.input} & set(UNRECORDED)
    for scratch in sorted(used):
        write_canonical_json(UNRECORDED[scratch], read_json(scratch))


# The data-stage caps that bound each source's preparation (the blend reads them all).
SOURCE_CAPS = {"quran_ayah_corpus": ("max_train_samples", "max_val_samples"), "retasy": ("max_retasy_samples",)}


def data_settings(source=None):
    """The `data` section the data stage reads, its max_*_samples the most any trial asks for
    (held under the config's own numbers, which are ceilings): each trial blends its own caps from
    what the data stage prepares. For one source's preparation, only its own caps and not the
    blend's include_retasy: a change to RetaSy's cap never re-prepares the main corpus."""
    settings = {**config["data"], **DATA_CAPS}
    if source is not None:
        other = {cap for name, keys in SOURCE_CAPS.items() if name != source for cap in keys}
        settings = {key: value for key, value in settings.items() if key not in other | {"include_retasy"}}
    return settings


def trials_settings():
    """Where the trials are and the overrides every trial takes (not the list of trials: adding
    a trial re-runs nothing else)."""
    return {key: config["trials"][key] for key in ("dir", "overrides")}


def sources_used():
    """The sources the data stage prepares: the main corpus, and RetaSy when it is blended."""
    names = ["quran_ayah_corpus"]
    if config["data"]["include_retasy"]:
        names.append("retasy")
    return names


def source_files(name):
    """A local source's files are inputs, so that editing the data re-runs what depends on it."""
    return local_files(config["sources"][name]) if name in config["sources"] else []


def source_manifests():
    """The per-source manifests the blend reads."""
    return [
        f"{DATA}/{name}/{split}.jsonl"
        for name in sources_used()
        for split in config["sources"][name]["splits"]
    ]


def built_corpus_manifest():
    """The manifest rule build_benchmark_corpus writes, when benchmark.build is set (else None)."""
    return os.path.join(config["benchmark"]["corpus"], "manifest.json") if config["benchmark"]["build"] else None


def built_corpus_sessions():
    """The long-form sessions' manifest rule build_benchmark_corpus writes beside the clips' (empty
    when no source asks for sessions), when benchmark.build is set (else None)."""
    return os.path.join(config["benchmark"]["corpus"], "sessions.json") if config["benchmark"]["build"] else None


def built_corpus_sources():
    """The datasets a built corpus reads: its sources, and the speech between the sessions' verses."""
    build = config["benchmark"]["build"]
    speech = build["sessions"]["speech_source"]
    return [*build["sources"], *([speech] if speech else [])]


def benchmark_audio():
    """The benchmark clips' audio and its long-form sessions' (not their manifests): the leakage
    guard reads only the audio. A corpus the workflow builds is not there at parse time: its
    manifests, the builder's outputs, stand for its clips and sessions."""
    if built_corpus_manifest():
        return [built_corpus_manifest(), built_corpus_sessions()]
    corpus = config["benchmark"]["corpus"]
    return [*benchmark_audio_files(corpus), *session_audio_files(corpus)]


def base_model_file():
    """The configured base model when it is a file (local, or the demo's, made by a rule)."""
    name = config["base_model"]
    return [name] if os.path.exists(name) or not is_hub_id(name) else []


def trial_files(wildcards):
    """A trial's file and the files it extends: editing any of them retrains the trial. A trial
    that extends the best of others reads the file resolve_trial writes from their benchmarks."""
    trial = TRIALS[wildcards.trial]
    if trial.best_of is not None:
        return [f"results/{wildcards.trial}/trial.yaml"]
    return [str(path) for path in trial.files]


def best_of_inputs(wildcards):
    """The trial file, the candidates' trial files, and the candidates' files that hold the
    metric they are ranked by: their training metadata for the validation WER (the default, so
    that the choice never depends on the benchmark corpus), their benchmarks for a benchmark
    metric. Whatever re-makes those chooses the best again (and retrains this trial)."""
    trial = TRIALS[wildcards.trial]
    candidates = trial.best_of["trials"]
    return {
        "trial": str(trial.files[0]),
        "candidates": sorted({str(path) for name in candidates for path in TRIALS[name].files}),
        "scores": [f"results/{name}/{candidate_scores_file(trial.best_of)}" for name in candidates],
    }


def demo_base_inputs():
    """What the demo base model is trained from: the base domain's raw files (demo_base.source) and
    the benchmark audio (for the leakage guard). Ancient: the committed model is kept whatever the files' times; a
    rebuild is asked for with -f demo/base_model.nemo (or by deleting the model). A corpus
    the workflow builds is left out: its build would re-train the committed model (build it first,
    snakemake <corpus>/manifest.json, before forcing a rebuild that should exclude its clips)."""
    built = built_corpus_manifest() is not None
    source = config["demo_base"].get("source")
    files = (local_files(source) if source else []) + ([] if built else benchmark_audio())
    return [ancient(path) for path in files]


def trial_outputs():
    return [f"results/{name}/training_metadata.json" for name in TRIALS]


def model_outputs():
    return [f"results/{name}/model.nemo" for name in TRIALS]


def benchmark_corpus_files():
    """The benchmark manifest and its audio: editing either re-runs only the benchmarks."""
    corpus = config["benchmark"]["corpus"]
    if built_corpus_manifest():
        return [built_corpus_manifest()]
    return [os.path.join(corpus, "manifest.json"), *benchmark_audio_files(corpus)]


def asr_outputs():
    """Every model's ASR benchmark, when asr_benchmark is set."""
    return [f"results/{model}/asr_benchmark.json" for model in MODELS] if config["asr_benchmark"] else []


def benchmark_outputs():
    return [*(f"results/{model}/benchmark.json" for model in MODELS), *asr_outputs(), "results/leaderboard.md"]


def validation_curves_output():
    """The trials' joint validation WER plot (none without trials)."""
    return [VALIDATION_CURVES] if TRIALS else []


def trial_record(model, name):
    """A trial's own file in its folder (training_metadata.json, averaging.json); none for the base."""
    return [] if model == "base" else [f"results/{model}/{name}"]


def ship_outputs():
    """The model to ship, and every model's card."""
    return ["results/best.json", *(f"results/{model}/MODEL_CARD.md" for model in MODELS)]


def data_outputs():
    return [f"{DATA}/report.json"]


def device(wildcards, resources):
    """Where a model runs: the GPU when the job has one (resources gpu, set by the gpu and slurm
    profiles), else the CPU."""
    return "cuda" if resources.get("gpu", 0) else "cpu"


# The export stage's files (rules/export.smk): each format's graph, and every export's benchmark.
def export_file(fmt):
    return EXPORT_FILES[fmt]


def browser_models():
    """The models whose exports the browser check runs (rules/export.smk), export.browser_models
    (every model when null), where export.browser is on (auto: where Chromium and its driver are
    installed)."""
    setting = config["export"]["browser"]
    if setting is False or (setting == "auto" and not chromium_available()):
        return []
    chosen = config["export"]["browser_models"]  # validate_config: each a model of this run
    return MODELS if chosen is None else [model for model in MODELS if model in chosen]


BROWSER_MODELS = browser_models()


def export_outputs():
    return [f"results/{model}/export/benchmark.{fmt}.json" for model in MODELS for fmt in EXPORT_FORMATS]


# The long-form stage's files (rules/benchmark.smk, benchmark_longform): each model's longform.json,
# when the benchmark corpus has sessions.
def corpus_sessions():
    """The benchmark corpus's sessions manifest and audio ([] when it has none). A corpus the
    workflow builds is not there at parse time: its sessions manifest, the builder's output, stands
    for them, and it has sessions when a source asks for them (benchmark.build.sources[].sessions)."""
    if built_corpus_manifest():
        asked = any(source["sessions"] for source in config["benchmark"]["build"]["sources"])
        return [built_corpus_sessions()] if asked else []
    manifest = os.path.join(config["benchmark"]["corpus"], SESSIONS_MANIFEST)
    if not os.path.exists(manifest):
        return []
    limit = config["longform"]["sessions"]  # the first ones only are judged
    return [manifest, *session_audio_files(config["benchmark"]["corpus"])[:limit]]


def longform_formats():
    """The files of each model the long-form benchmark judges (longform.formats; null: all)."""
    return config["longform"]["formats"] or ["nemo", *EXPORT_FORMATS]


def longform_files(wildcards):
    return [f"results/{wildcards.model}/model.nemo" if fmt == "nemo" else
            f"results/{wildcards.model}/export/{export_file(fmt)}" for fmt in longform_formats()]


def longform_outputs():
    return [f"results/{model}/longform.json" for model in MODELS] if corpus_sessions() else []


def browser_outputs():
    """The browser checks' files (rules/export.smk), one per model of BROWSER_MODELS."""
    return [f"results/{model}/export/browser.json" for model in BROWSER_MODELS]
