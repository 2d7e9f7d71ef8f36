"""The data stage's commands: the leakage guard's index, each source's preparation, the report, the
benchmark corpus's build and the ASR test set."""

from __future__ import annotations

import argparse
import logging

from quranft.commands.options import add_config_options, config_of
from quranft.config import ConfigError

log = logging.getLogger("quranft")


def cmd_index_benchmark(args: argparse.Namespace) -> None:
    from quranft.data.benchmark_index import benchmark_speakers, build_index, write_index

    index, skipped = build_index(args.corpus, args.asr_set)
    for clip in skipped:
        log.warning("benchmark clip %s (%s) not fingerprinted: %s", clip["id"], clip["file"], clip["error"])
    speakers = benchmark_speakers(args.corpus)
    write_index(index, args.output, speakers)
    log.info("fingerprinted %d benchmark clips and sessions of %d named speakers into %s", len(index), len(speakers),
             args.output)


def cmd_prepare_source(args: argparse.Namespace) -> None:
    from quranft.data.prepare import prepare_source

    config = config_of(args)
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


def cmd_blend(args: argparse.Namespace) -> None:
    from quranft.data.blend import blend

    report = blend(_prepared_sources(args), config_of(args)["data"]["include_retasy"], args.out_dir)
    for split, figures in report["manifests"].items():
        log.info("%s: %d rows, %.2f h", split, figures["rows"], figures["hours"])


def cmd_data_report(args: argparse.Namespace) -> None:
    from quranft.data.blend import data_report

    report = data_report(_prepared_sources(args), config_of(args)["data"]["include_retasy"], args.output)
    for split, figures in report["manifests"].items():
        log.info("%s: %d rows, %.2f h prepared", split, figures["rows"], figures["hours"])


def cmd_build_corpus(args: argparse.Namespace) -> None:
    from quranft.evaluation.build_corpus import build_corpus

    config = config_of(args)
    if not config["benchmark"].get("build"):
        raise ConfigError("config key 'benchmark.build' is not set: nothing to build the corpus from")
    out_dir = args.output or config["benchmark"]["corpus"]
    report = build_corpus(config["benchmark"]["build"], out_dir)
    log.info("benchmark corpus %s: %d clips, by category %s, by source %s; %d long-form sessions (%.1f minutes)",
             out_dir, report["samples"], report["by_category"], report["by_source"], report["sessions"]["count"],
             report["sessions"]["minutes"])


def cmd_prepare_asr_benchmark(args: argparse.Namespace) -> None:
    from quranft.evaluation.asr_benchmark import prepare_asr_set

    config = config_of(args)
    if not config.get("asr_benchmark"):
        raise ConfigError("config key 'asr_benchmark' is not set: no ASR test set to prepare")
    report = prepare_asr_set(config["asr_benchmark"], args.out_dir)
    log.info("ASR test set %s: %d clips (%.2f h) by subset %s; skipped %s", args.out_dir, report["kept"],
             report["hours"], report["by_subset"], report["skipped"])


def _add_prepared_sources(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser)
    parser.add_argument("--quran-ayah-corpus", required=True, help="folder of the main corpus's manifests")
    parser.add_argument("--retasy", help="folder of the RetaSy manifests")


def _prepared_sources(args: argparse.Namespace) -> dict[str, str]:
    """The folders of the prepared sources given on the command line, by source name."""
    return {"quran_ayah_corpus": args.quran_ayah_corpus, **({"retasy": args.retasy} if args.retasy else {})}


def add_commands(commands) -> None:
    """The commands of the data stage and the benchmark data."""
    index = commands.add_parser("index-benchmark", help="fingerprint the benchmark corpus's clips and sessions")
    index.add_argument("--corpus", required=True, help="folder with manifest.json")
    index.add_argument("--asr-set", help="the prepared ASR test set (prepare-asr-benchmark): its clips too")
    index.add_argument("--output", required=True, help=".npz file to write")
    index.set_defaults(run=cmd_index_benchmark)

    prepare = commands.add_parser("prepare-source", help="one source to audio files and manifests")
    add_config_options(prepare)
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
    add_config_options(build)
    build.add_argument("--output", help="corpus folder to write (default: benchmark.corpus)")
    build.set_defaults(run=cmd_build_corpus)

    asr_set = commands.add_parser("prepare-asr-benchmark", help="decode the ASR test set (asr_benchmark) once")
    add_config_options(asr_set)
    asr_set.add_argument("--out-dir", required=True, help="folder to write (audio/, manifest.jsonl, report.json)")
    asr_set.set_defaults(run=cmd_prepare_asr_benchmark)
