"""Command line of every stage: `python -m quranft <command> --help`.

Each Snakemake rule calls one of these commands; each also runs without Snakemake.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from quranft.config import ConfigError, load_config
from quranft.errors import QuranftError

log = logging.getLogger("quranft")


def _config(args: argparse.Namespace) -> dict:
    if args.settings:
        from quranft.fileio import read_json

        return read_json(args.settings)
    if args.config:
        return load_config(*args.config)
    raise ConfigError("give --config FILE [FILE ...] or --settings FILE")


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--config", nargs="+", metavar="FILE", help="YAML config files, later ones override")
    group.add_argument("--settings", metavar="FILE",
                       help="sections of the already validated config, as a JSON file (what the rules pass)")


def _add_prepared_sources(parser: argparse.ArgumentParser) -> None:
    _add_config_options(parser)
    parser.add_argument("--quran-ayah-corpus", required=True, help="folder of the main corpus's manifests")
    parser.add_argument("--retasy", help="folder of the RetaSy manifests")


def cmd_index_benchmark(args: argparse.Namespace) -> None:
    from quranft.data.benchmark_index import benchmark_speakers, build_index, write_index

    index, skipped = build_index(args.corpus, args.asr_set)
    for clip in skipped:
        log.warning("benchmark clip %s (%s) not fingerprinted: %s", clip["id"], clip["file"], clip["error"])
    speakers = benchmark_speakers(args.corpus)
    write_index(index, args.output, speakers)
    log.info("fingerprinted %d benchmark clips of %d named speakers into %s", len(index), len(speakers), args.output)


def cmd_prepare_source(args: argparse.Namespace) -> None:
    from quranft.data.prepare import prepare_source

    config = _config(args)
    if args.source not in config["sources"]:
        raise ConfigError(f"config key 'sources.{args.source}' is missing")
    report = prepare_source(
        args.source,
        config["sources"][args.source],
        config["data"],
        args.out_dir,
        benchmark_index=args.benchmark_index,
        workers=args.workers,
    )
    for split, figures in report["splits"].items():
        log.info(
            "%s/%s: kept %d of %s rows (%.2f h); dropped %s",
            args.source, split, figures["kept"], figures["rows_total"], figures["kept_hours"],
            {k: v for k, v in figures["dropped"].items() if v},
        )


def _prepared_sources(args: argparse.Namespace) -> dict[str, str]:
    """The folders of the prepared sources given on the command line, by source name."""
    return {"quran_ayah_corpus": args.quran_ayah_corpus, **({"retasy": args.retasy} if args.retasy else {})}


def cmd_blend(args: argparse.Namespace) -> None:
    from quranft.data.blend import blend

    report = blend(_prepared_sources(args), _config(args)["data"]["include_retasy"], args.out_dir)
    for split, figures in report["manifests"].items():
        log.info("%s: %d rows, %.2f h", split, figures["rows"], figures["hours"])


def cmd_data_report(args: argparse.Namespace) -> None:
    from quranft.data.blend import data_report

    report = data_report(_prepared_sources(args), _config(args)["data"]["include_retasy"], args.output)
    for split, figures in report["manifests"].items():
        log.info("%s: %d rows, %.2f h prepared", split, figures["rows"], figures["hours"])


def cmd_base_model(args: argparse.Namespace) -> None:
    from quranft.models.base_model import materialize

    config = _config(args)
    origin = materialize(config["base_model"], args.output)
    log.info("base model %s (%s) -> %s", config["base_model"], origin["kind"], args.output)


def cmd_pretrain_demo_base(args: argparse.Namespace) -> None:
    from quranft.training.demo_base import pretrain_from_config

    metadata = pretrain_from_config(_config(args), args.output, args.threads)
    log.info("demo base model: %s after %d steps (%.0f s)", metadata["validation"], metadata["steps"],
             metadata["wall_seconds"])


def _resolved_trial(config: dict, name: str, trial_dir: str):
    """The trial, with an extends_best trial read from <results>/<name>/trial.yaml."""
    from quranft.training.trials import load_trial

    trial = load_trial(config["trials"]["dir"], name, config["trials"]["overrides"],
                       resolved_dir=Path(trial_dir).parent)
    if trial.values is None:
        raise ConfigError(f"trial {name} uses extends_best: run resolve-trial first")
    return trial


def cmd_train(args: argparse.Namespace) -> None:
    from quranft.training.launch import relaunch_as_tasks, srun_command

    devices = args.gpus or args.cpu_processes
    command = srun_command(devices * args.num_nodes, devices, args.num_nodes, args.threads, args.argv)
    if command:  # in a Slurm job: one task per device, each running this same command
        relaunch_as_tasks(command)

    from quranft.training.configure import Resources
    from quranft.training.train import train_trial

    config = _config(args)
    trial = _resolved_trial(config, args.trial, args.out_dir)
    sources = {name: Path(args.data_dir) / name for name in config["sources"]}
    resources = Resources(gpus=args.gpus, num_nodes=args.num_nodes, cpu_processes=args.cpu_processes,
                          threads=args.threads)
    metadata = train_trial(trial, args.base_model, sources, args.out_dir, resources)
    if metadata:
        log.info("%s: %d steps, best %s %.4f, %.2f steps/s", args.trial, metadata["training"]["global_step"],
                 metadata["training"]["monitor"], metadata["training"]["best_score"] or float("nan"),
                 metadata["training"]["steps_per_second"] or 0.0)


def cmd_average(args: argparse.Namespace) -> None:
    from quranft.training.average import average_trial

    config = _config(args)
    trial = _resolved_trial(config, args.trial, args.trial_dir)
    settings = config["averaging"]
    average_trial(args.trial_dir, args.base_model, trial.values["average_top_k"], settings["mode"],
                  settings["weighted"], max_val_clips=settings["max_val_clips"], device=args.device)


def cmd_benchmark(args: argparse.Namespace) -> None:
    from quranft.evaluation.benchmark import run_benchmark

    config = _config(args)
    settings = config["benchmark"]
    result = run_benchmark(args.model, settings["corpus"], args.output, args.name, tuple(settings["matchers"]),
                           settings["primary_matcher"], settings["batch_size"], args.device, args.log_probs,
                           args.training_metadata, tuple(settings["decoders"]))
    summary = result["summary"][settings["primary_matcher"]]
    log.info("%s: recall %.3f, precision %.3f, SeqAcc %.3f (%s matcher), WER %.3f", args.name, summary["recall"],
             summary["precision"], summary["sequence_accuracy"], settings["primary_matcher"],
             result["transcripts"]["wer"] or float("nan"))
    if summary["errors"]:
        log.warning("%s: samples that failed (scored 0), by kind: %s", args.name, summary["errors"])
    if "decoders" in result:
        rnnt = result["decoders"]["rnnt"]
        figures = rnnt["summary"][rnnt["matcher"]]
        log.info("%s, RNNT head: recall %.3f, precision %.3f, SeqAcc %.3f (%s matcher), WER %.3f; decoded in %.1f s",
                 args.name, figures["recall"], figures["precision"], figures["sequence_accuracy"], rnnt["matcher"],
                 rnnt["transcripts"]["wer"] or float("nan"), rnnt["decode_seconds"])


def _named(items: list[str]) -> dict[str, str]:
    """NAME=FILE arguments by name."""
    return dict(item.split("=", 1) for item in items)


def cmd_leaderboard(args: argparse.Namespace) -> None:
    from quranft.evaluation.leaderboard import write_leaderboard

    board = write_leaderboard(_named(args.benchmarks), args.markdown, args.json, args.png, args.matcher,
                              _named(args.choices), _named(args.asr), args.validation_curves,
                              _exports(args.exports))
    log.info("leaderboard of %d models (%s matcher) -> %s", len(board["rows"]), board["matcher"], args.markdown)


def _exports(items: list[str]) -> dict[str, dict[str, str]]:
    """MODEL:FORMAT=FILE items by model, then format."""
    exports: dict[str, dict[str, str]] = {}
    for key, path in _named(items).items():
        model, fmt = key.split(":", 1)
        exports.setdefault(model, {})[fmt] = path
    return exports


def cmd_best_model(args: argparse.Namespace) -> None:
    from quranft.evaluation.best import write_best

    best = write_best(args.leaderboard, _named(args.models), args.export_formats, args.output)
    log.info("the model to ship: %s (%s)", best["model"], best["reason"])


def cmd_model_card(args: argparse.Namespace) -> None:
    from quranft.evaluation.model_card import write_model_card

    write_model_card(args.leaderboard, args.model, _config(args), args.output, args.training_metadata, args.averaging)
    log.info("model card of %s -> %s", args.model, args.output)


def cmd_validation_curves(args: argparse.Namespace) -> None:
    from quranft.training.curves import plot_validation_wer

    drawn = plot_validation_wer(_named(args.metrics), args.output)
    log.info("validation WER of %d trials -> %s", len(drawn), args.output)


def cmd_build_corpus(args: argparse.Namespace) -> None:
    from quranft.evaluation.build_corpus import build_corpus

    config = _config(args)
    if not config["benchmark"].get("build"):
        raise ConfigError("config key 'benchmark.build' is not set: nothing to build the corpus from")
    out_dir = args.output or config["benchmark"]["corpus"]
    report = build_corpus(config["benchmark"]["build"], out_dir)
    log.info("benchmark corpus %s: %d clips, by category %s, by source %s", out_dir, report["samples"],
             report["by_category"], report["by_source"])


def cmd_prepare_asr_benchmark(args: argparse.Namespace) -> None:
    from quranft.evaluation.asr_benchmark import prepare_asr_set

    config = _config(args)
    if not config.get("asr_benchmark"):
        raise ConfigError("config key 'asr_benchmark' is not set: no ASR test set to prepare")
    report = prepare_asr_set(config["asr_benchmark"], args.out_dir)
    log.info("ASR test set %s: %d clips (%.2f h) by subset %s; skipped %s", args.out_dir, report["kept"],
             report["hours"], report["by_subset"], report["skipped"])


def cmd_asr_benchmark(args: argparse.Namespace) -> None:
    from quranft.evaluation.asr_benchmark import run_asr_benchmark

    config = _config(args)
    if not config.get("asr_benchmark"):
        raise ConfigError("config key 'asr_benchmark' is not set")
    result = run_asr_benchmark(args.model, args.test_set, args.output, args.name,
                               config["asr_benchmark"]["batch_size"], args.device,
                               tuple(config["benchmark"]["decoders"]))
    heads = {"ctc": result["summary"], **{name: block["summary"] for name, block in result.get("decoders", {}).items()}}
    for head, summary in heads.items():
        for subset, figures in summary.items():
            log.info("%s %s, %s head: WER %s, CER %s (no diacritics); WER %s with diacritics; %d clips", args.name,
                     subset, head, figures["plain"]["wer"], figures["plain"]["cer"], figures["diacritized"]["wer"],
                     figures["clips"])


def cmd_rescore(args: argparse.Namespace) -> None:
    from quranft.evaluation.rescore import rescore

    result = rescore(args.corpus, args.transcripts, args.matcher, args.output, args.log_probs, args.tokenizer_from,
                     args.decoder)
    summary = result["summary"][args.matcher]
    log.info("%s matcher: recall %.3f, precision %.3f, SeqAcc %.3f over %d samples", args.matcher,
             summary["recall"], summary["precision"], summary["sequence_accuracy"], summary["samples"])


def cmd_resolve_trial(args: argparse.Namespace) -> None:
    from quranft.fileio import read_json
    from quranft.training.trials import resolve_best

    config = _config(args)
    results = {name: read_json(path) for name, path in _named(args.scores).items()}
    choice = resolve_best(config["trials"]["dir"], args.trial, config["trials"]["overrides"], results, args.output,
                          args.choice)
    log.info("%s extends %s (best by %s on the %s data: %s)", args.trial, choice["chosen"], choice["metric"],
             choice["selected_on"], choice["scores"])


def cmd_export(args: argparse.Namespace) -> None:
    from quranft.deploy.export import DEFAULT_MAX_SECONDS, DEFAULT_PARITY_CLIPS, export_model

    settings = _config(args)["export"] if (args.settings or args.config) else {}
    formats = args.formats or settings.get("formats", ["fp32", "int8"])
    result = export_model(args.model, args.out_dir, formats, args.parity_manifest,
                          args.parity_clips or settings.get("parity_clips", DEFAULT_PARITY_CLIPS),
                          args.max_seconds or settings.get("max_seconds", DEFAULT_MAX_SECONDS), args.threads)
    for fmt, record in result["formats"].items():
        agreement = result["parity"].get(fmt)
        shared = f", {agreement['identical_transcripts']}/{agreement['clips']} transcripts as the .nemo's" if agreement else ""
        log.info("%s: %s, %.1f MB%s", args.model, record["file"], record["bytes"] / 1e6, shared)


def cmd_identify(args: argparse.Namespace) -> int:
    from quranft.deploy.identify import run

    return 1 if run(args.model, args.files, args.matcher, args.threads, args.json, sys.stdout) else 0


def _add_deploy_commands(commands) -> None:
    """The commands that make and use what ships: the exports, and identifying verses in recordings."""
    export = commands.add_parser("export", help="export a .nemo as ONNX (raw audio in, CTC log-probs out), quantized")
    _add_config_options(export)
    export.add_argument("--model", required=True, help="the .nemo to export")
    export.add_argument("--out-dir", required=True, help="folder for model.onnx, model.int8.onnx, ..., export.json")
    export.add_argument("--formats", nargs="+", choices=["fp32", "int8", "int4"],
                        help="formats to write (default: the config's export.formats, else fp32 int8)")
    export.add_argument("--parity-manifest", help="manifest (JSONL) of the clips to measure parity on")
    export.add_argument("--parity-clips", type=int, help="how many of its clips (default 100)")
    export.add_argument("--max-seconds", type=float, help="the longest clip the graph takes (default 40)")
    export.add_argument("--threads", type=int, default=0, help="onnxruntime threads for the parity check")
    export.set_defaults(run=cmd_export)

    identify = commands.add_parser("identify", help="the verses recited in audio files, by a .nemo or an .onnx")
    identify.add_argument("--model", required=True, help="a .nemo, or an export's model*.onnx")
    identify.add_argument("files", nargs="+", help="audio files (any container ffmpeg or libsndfile decodes)")
    identify.add_argument("--matcher", choices=["ctc", "text"], default="ctc", help="verse matcher (default ctc)")
    identify.add_argument("--json", action="store_true", help="one JSON object a line")
    identify.add_argument("--threads", type=int, default=0, help="onnxruntime threads (default: one per core)")
    identify.set_defaults(run=cmd_identify)


def _add_data_commands(commands) -> None:
    """The commands of the data stage and the benchmark data."""
    index = commands.add_parser("index-benchmark", help="fingerprint the benchmark corpus's clips")
    index.add_argument("--corpus", required=True, help="folder with manifest.json")
    index.add_argument("--asr-set", help="the prepared ASR test set (prepare-asr-benchmark): its clips too")
    index.add_argument("--output", required=True, help=".npz file to write")
    index.set_defaults(run=cmd_index_benchmark)

    prepare = commands.add_parser("prepare-source", help="one source to audio files and manifests")
    _add_config_options(prepare)
    prepare.add_argument("--source", required=True, choices=["quran_ayah_corpus", "retasy"])
    prepare.add_argument("--out-dir", required=True)
    prepare.add_argument("--benchmark-index", help="fingerprints from index-benchmark (leakage guard)")
    prepare.add_argument("--workers", type=int, default=1, help="decoding processes")
    prepare.set_defaults(run=cmd_prepare_source)

    blend = commands.add_parser("blend", help="everything prepared as train.jsonl and validation.jsonl, with its report")
    _add_prepared_sources(blend)
    blend.add_argument("--out-dir", required=True)
    blend.set_defaults(run=cmd_blend)

    report = commands.add_parser("data-report", help="the data stage's report: every source's, and their blend's")
    _add_prepared_sources(report)
    report.add_argument("--output", required=True, help="report JSON to write (results/data/report.json)")
    report.set_defaults(run=cmd_data_report)

    build = commands.add_parser("build-corpus", help="build the benchmark corpus from datasets (benchmark.build)")
    _add_config_options(build)
    build.add_argument("--output", help="corpus folder to write (default: benchmark.corpus)")
    build.set_defaults(run=cmd_build_corpus)

    asr_set = commands.add_parser("prepare-asr-benchmark", help="decode the ASR test set (asr_benchmark) once")
    _add_config_options(asr_set)
    asr_set.add_argument("--out-dir", required=True, help="folder to write (audio/, manifest.jsonl, report.json)")
    asr_set.set_defaults(run=cmd_prepare_asr_benchmark)


def _add_training_commands(commands) -> None:
    """The commands of the base model, the trials, training and averaging."""
    base = commands.add_parser("base-model", help="put the configured base model at a path")
    _add_config_options(base)
    base.add_argument("--output", required=True, help=".nemo file to write")
    base.set_defaults(run=cmd_base_model)

    pretrain = commands.add_parser("pretrain-demo-base", help="train the demo's tiny stand-in base model")
    _add_config_options(pretrain)
    pretrain.add_argument("--output", required=True, help=".nemo file to write")
    pretrain.add_argument("--threads", type=int, default=1)
    pretrain.set_defaults(run=cmd_pretrain_demo_base)

    resolve = commands.add_parser("resolve-trial", help="resolve an extends_best trial from its candidates' results")
    _add_config_options(resolve)
    resolve.add_argument("--trial", required=True)
    resolve.add_argument("--scores", nargs="+", required=True, metavar="NAME=FILE",
                         help="each candidate's training_metadata.json (metric validation_wer) or benchmark.json")
    resolve.add_argument("--output", required=True, help="the resolved trial file (results/<trial>/trial.yaml)")
    resolve.add_argument("--choice", required=True, help="how it was chosen, as JSON (results/<trial>/extends_best.json)")
    resolve.set_defaults(run=cmd_resolve_trial)

    train = commands.add_parser("train", help="fine-tune the base model as one trial says")
    _add_config_options(train)
    train.add_argument("--trial", required=True, help="trial name (config/trials/<name>.yaml)")
    train.add_argument("--base-model", required=True, help="the base .nemo")
    train.add_argument("--data-dir", required=True, help="folder of the per-source manifests (results/data)")
    train.add_argument("--out-dir", required=True, help="the trial's folder (results/<trial>)")
    train.add_argument("--gpus", type=int, default=0, help="GPUs per node; 0 trains on the CPU")
    train.add_argument("--num-nodes", type=int, default=1)
    train.add_argument("--cpu-processes", type=int, default=1, help="DDP processes on the CPU (gloo)")
    train.add_argument("--threads", type=int, default=1, help="CPU threads; data workers follow it")
    train.set_defaults(run=cmd_train)

    average = commands.add_parser("average", help="average a trial's top-k checkpoints into model.nemo")
    _add_config_options(average)
    average.add_argument("--trial", required=True, help="trial name (its average_top_k is used)")
    average.add_argument("--trial-dir", required=True, help="the trial's folder (results/<trial>)")
    average.add_argument("--base-model", required=True, help="the base .nemo (tokenizer and config)")
    average.add_argument("--device", default="cpu", help="where the guard decodes: cpu or cuda")
    average.set_defaults(run=cmd_average)

    curves = commands.add_parser("validation-curves", help="every trial's validation WER by step on one plot")
    curves.add_argument("--metrics", nargs="+", required=True, metavar="NAME=FILE",
                        help="each trial's Lightning metrics.csv (results/<trial>/logs/csv/metrics.csv)")
    curves.add_argument("--output", required=True, help="PNG to write")
    curves.set_defaults(run=cmd_validation_curves)


def _add_evaluation_commands(commands) -> None:
    """The commands of benchmarks, the leaderboard and re-scoring."""
    bench = commands.add_parser("benchmark", help="verse-identification benchmark of one model")
    _add_config_options(bench)
    bench.add_argument("--model", required=True, help="the .nemo, or an exported .onnx, to benchmark")
    bench.add_argument("--name", required=True, help="the model's name in the results (base, v1, ...)")
    bench.add_argument("--output", required=True, help="benchmark JSON to write")
    bench.add_argument("--log-probs", help="also save the per-sample CTC log-probabilities here (.npz)")
    bench.add_argument("--training-metadata", help="the trial's training_metadata.json: figures split by "
                                                   "whether each clip's speaker was trained on")
    bench.add_argument("--device", default="cpu", help="cpu or cuda")
    bench.set_defaults(run=cmd_benchmark)

    asr = commands.add_parser("asr-benchmark", help="WER and CER of one model on the prepared ASR test set")
    _add_config_options(asr)
    asr.add_argument("--model", required=True, help="the .nemo to score")
    asr.add_argument("--name", required=True, help="the model's name in the results (base, v1, ...)")
    asr.add_argument("--test-set", required=True, help="folder written by prepare-asr-benchmark")
    asr.add_argument("--output", required=True, help="JSON to write")
    asr.add_argument("--device", default="cpu", help="cpu or cuda")
    asr.set_defaults(run=cmd_asr_benchmark)

    board = commands.add_parser("leaderboard", help="compare every model's benchmark with the base's")
    board.add_argument("--benchmarks", nargs="+", required=True, metavar="NAME=FILE",
                       help="benchmark JSONs by model name; one must be named base")
    board.add_argument("--choices", nargs="*", default=[], metavar="NAME=FILE",
                       help="how each extends_best trial was chosen (results/<trial>/extends_best.json)")
    board.add_argument("--asr", nargs="*", default=[], metavar="NAME=FILE",
                       help="ASR benchmark JSONs by model name (results/<model>/asr_benchmark.json)")
    board.add_argument("--matcher", help="matcher to rank by (default: the benchmarks' primary)")
    board.add_argument("--markdown", required=True)
    board.add_argument("--json", required=True)
    board.add_argument("--png", required=True)
    board.add_argument("--validation-curves", help="the trials' joint validation WER plot, to link to")
    board.add_argument("--exports", nargs="*", default=[], metavar="MODEL:FORMAT=FILE",
                       help="benchmarks of the exports (results/<model>/export/benchmark.<format>.json)")
    board.set_defaults(run=cmd_leaderboard)

    best = commands.add_parser("best-model", help="name the model to ship, from the leaderboard (best.json)")
    best.add_argument("--leaderboard", required=True, help="leaderboard JSON (results/leaderboard.json)")
    best.add_argument("--models", nargs="+", required=True, metavar="NAME=FILE", help="each model's .nemo by name")
    best.add_argument("--export-formats", nargs="*", default=[], help="the exports to list (fp32, int8, int4)")
    best.add_argument("--output", required=True, help="JSON to write (results/best.json)")
    best.set_defaults(run=cmd_best_model)

    card = commands.add_parser("model-card", help="a model's Hugging Face model card, from the leaderboard")
    _add_config_options(card)
    card.add_argument("--leaderboard", required=True, help="leaderboard JSON (results/leaderboard.json)")
    card.add_argument("--model", required=True, help="the model's name on the leaderboard (base, v1, ...)")
    card.add_argument("--training-metadata", help="a trial's training_metadata.json")
    card.add_argument("--averaging", help="a trial's averaging.json")
    card.add_argument("--output", required=True, help="Markdown to write (results/<model>/MODEL_CARD.md)")
    card.set_defaults(run=cmd_model_card)

    rescore = commands.add_parser("rescore", help="score saved transcripts with a matcher, without the model")
    rescore.add_argument("--corpus", required=True, help="the benchmark corpus folder (its manifest has the truth)")
    rescore.add_argument("--transcripts", required=True,
                         help="JSONL of {id, text}, or a benchmark JSON (its rows' transcripts)")
    rescore.add_argument("--matcher", choices=["text", "ctc"], default="text")
    rescore.add_argument("--decoder", choices=["ctc", "rnnt"], default="ctc",
                         help="a benchmark JSON's transcripts of this head (rnnt: its decoders.rnnt rows)")
    rescore.add_argument("--log-probs", help="saved log-probabilities (.npz), for the ctc matcher")
    rescore.add_argument("--tokenizer-from", help="the .nemo whose tokenizer produced the log-probabilities")
    rescore.add_argument("--output", required=True, help="predictions JSON to write")
    rescore.set_defaults(run=cmd_rescore)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quranft", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    _add_data_commands(commands)
    _add_training_commands(commands)
    _add_evaluation_commands(commands)
    _add_deploy_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv  # what a command re-runs itself with (training, as one Slurm task per device)
    try:
        return args.run(args) or 0
    except QuranftError as error:  # one clear line for the rule's log, then a non-zero exit
        log.error("%s", error)
        return 1
