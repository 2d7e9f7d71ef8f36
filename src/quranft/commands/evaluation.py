"""The evaluation stage's commands: the benchmarks, the leaderboard, the model to ship, the model
cards and re-scoring."""

from __future__ import annotations

import argparse
import logging

from quranft.commands.options import add_config_options, add_model_options, check_nemo_inputs, config_of, named
from quranft.config import ConfigError, schema_default

log = logging.getLogger("quranft")


def cmd_benchmark(args: argparse.Namespace) -> None:
    """Each --model into its --output, in one process: the corpus, its hash and the verse index
    are loaded once for all of them (an export's formats are benchmarked by one job)."""
    check_nemo_inputs(*args.model)
    from quranft.evaluation.benchmark import load_corpus, run_benchmark
    from quranft.matching.threshold import DEFAULT_CLIPS

    if len(args.model) != len(args.output):
        raise ConfigError(f"benchmark: {len(args.model)} --model but {len(args.output)} --output; one output per model")
    if len(args.model) > 1 and (args.log_probs or args.training_metadata):
        raise ConfigError("benchmark: --log-probs and --training-metadata are for one --model")
    config = config_of(args)
    settings = config["benchmark"]
    corpus = load_corpus(settings["corpus"])
    for model, output in zip(args.model, args.output):
        result = run_benchmark(model, corpus, output, args.name, tuple(settings["matchers"]),
                               settings["primary_matcher"], settings["batch_size"], args.device, args.log_probs,
                               args.training_metadata, tuple(settings["decoders"]),
                               validation=args.validation_manifest,
                               threshold_clips=settings.get("threshold_clips", DEFAULT_CLIPS))
        log_figures(args.name, settings["primary_matcher"], result)


def cmd_browser_check(args: argparse.Namespace) -> None:
    """An export's files run in headless Chromium (onnxruntime-web, WASM, one thread), scored by the
    benchmark's matchers, into one browser.json."""
    from quranft.evaluation.browser_check import run_browser_check
    from quranft.matching.threshold import DEFAULT_CLIPS
    from quranft.models.browser import WEB_DIR

    settings = config_of(args)["benchmark"]
    run_browser_check(args.model, settings["corpus"], args.output, args.name, tuple(settings["matchers"]),
                      settings["primary_matcher"], args.validation_manifest,
                      settings.get("threshold_clips", DEFAULT_CLIPS), args.web_dir or WEB_DIR)


def log_figures(name: str, primary: str, result: dict) -> None:
    summary = result["summary"][primary]
    negatives = summary["negatives"]
    log.info("%s (%s): recall %.3f, precision %.3f, SeqAcc %.3f (%s matcher), WER %.3f; false accepts %d of %d "
             "negatives (confidence threshold %.3f)", name, result["model"]["format"], summary["recall"],
             summary["precision"], summary["sequence_accuracy"], primary, result["transcripts"]["wer"] or float("nan"),
             negatives["false_accepts"], negatives["samples"], result["rejection"]["threshold"])
    if summary["errors"]:
        log.warning("%s: samples that failed (scored 0), by kind: %s", name, summary["errors"])
    if "decoders" in result:
        rnnt = result["decoders"]["rnnt"]
        figures = rnnt["summary"][rnnt["matcher"]]
        log.info("%s, RNNT head: recall %.3f, precision %.3f, SeqAcc %.3f (%s matcher), WER %.3f; decoded in %.1f s",
                 name, figures["recall"], figures["precision"], figures["sequence_accuracy"], rnnt["matcher"],
                 rnnt["transcripts"]["wer"] or float("nan"), rnnt["decode_seconds"])


def cmd_asr_benchmark(args: argparse.Namespace) -> None:
    from quranft.evaluation.asr_benchmark import run_asr_benchmark

    config = config_of(args)
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


def cmd_leaderboard(args: argparse.Namespace) -> None:
    from quranft.evaluation.leaderboard import write_leaderboard

    board = write_leaderboard(named(args.benchmarks), args.markdown, args.json, args.png, args.matcher,
                              named(args.choices), named(args.asr), args.validation_curves,
                              _exports(args.exports), named(args.longform), args.max_seqacc_loss,
                              named(args.browser))
    log.info("leaderboard of %d models (%s matcher) -> %s", len(board["rows"]), board["matcher"], args.markdown)


def _exports(items: list[str]) -> dict[str, dict[str, str]]:
    """MODEL:FORMAT=FILE items by model, then format."""
    exports: dict[str, dict[str, str]] = {}
    for key, path in named(items).items():
        model, fmt = key.split(":", 1)
        exports.setdefault(model, {})[fmt] = path
    return exports


def cmd_best_model(args: argparse.Namespace) -> None:
    from quranft.evaluation.best import write_best

    best = write_best(args.leaderboard, named(args.models), args.export_formats, args.output)
    log.info("the model to ship: %s (%s)", best["model"], best["reason"])


def cmd_model_card(args: argparse.Namespace) -> None:
    from quranft.evaluation.model_card import write_model_card

    write_model_card(args.leaderboard, args.model, config_of(args), args.output, args.training_metadata, args.averaging)
    log.info("model card of %s -> %s", args.model, args.output)


def cmd_rescore(args: argparse.Namespace) -> None:
    from quranft.evaluation.rescore import rescore

    result = rescore(args.corpus, args.transcripts, args.matcher, args.output, args.log_probs, args.tokenizer_from,
                     args.decoder)
    summary = result["summary"][args.matcher]
    log.info("%s matcher: recall %.3f, precision %.3f, SeqAcc %.3f over %d samples", args.matcher,
             summary["recall"], summary["precision"], summary["sequence_accuracy"], summary["samples"])


def cmd_window_error(args: argparse.Namespace) -> None:
    from quranft.evaluation.window_error import measure_windows
    from quranft.models.windowed import Windowing

    windowings = [Windowing(window, context) for window in args.window_seconds for context in args.context_seconds
                  if window > 2 * context]
    for row in measure_windows(args.model, args.corpus, windowings, args.output, args.threads)["windowings"]:
        log.info("windows of %g s, %g s of context, %d windowed clips: %d transcripts as the whole clips' (CER %.3f "
                 "against them); log-probs at most %.3g apart (mean %.2g), %.2g%% of frames with another best class; "
                 "WER %.3f (whole clips %.3f); CTC matcher: %d the same verses, SeqAcc %.3f (whole clips %.3f)",
                 row["window_seconds"], row["context_seconds"], row["windowed_clips"], row["identical_transcripts"],
                 row["cer_against_whole"] or 0.0, row["largest_log_prob_difference"] or 0.0,
                 row["mean_log_prob_difference"] or 0.0, 100 * (row["other_best_class_frames"] or 0.0),
                 row["wer_windowed"] or 0.0, row["wer_whole"] or 0.0, row["same_verses"],
                 row["sequence_accuracy_windowed"] or 0.0, row["sequence_accuracy_whole"] or 0.0)


def cmd_benchmark_longform(args: argparse.Namespace) -> None:
    """Each of a model's files on the sessions; the settings from the config's `longform` section
    (--settings/--config), each overridden by its own option when given."""
    check_nemo_inputs(*args.model)
    from quranft.evaluation.longform import run_longform_formats
    from quranft.fileio import read_json

    settings = config_of(args)["longform"] if args.settings or args.config else {}
    chosen = {key: getattr(args, key) if getattr(args, key) is not None else settings.get(key, default)
              for key, default in (("chunk_seconds", 0.5), ("hold_seconds", 1.0), ("sessions", None))}
    threshold = None
    if args.threshold_from:  # a .nemo's threshold, chosen on the validation clips by its benchmark
        threshold = read_json(args.threshold_from)["rejection"]["threshold"]
    record = run_longform_formats(args.model, args.corpus, args.output, args.name, threads=args.threads,
                                  device=args.device, threshold=threshold, **chosen)
    for fmt, result in record["formats"].items():
        offline, streamed = result["offline"], result["streamed"]
        log.info("%s (%s), %d sessions: verse F1 %.3f offline, %.3f streamed (emission delay p90 %.1f s); "
                 "real-time factor %.3f / %.3f", args.name, fmt, result["corpus"]["sessions"], offline["f1"],
                 streamed["f1"], streamed["emission_delay"]["p90"] or 0.0, offline["real_time_factor"],
                 streamed["real_time_factor"])


def add_commands(commands) -> None:
    """The commands of benchmarks, the leaderboard and re-scoring."""
    bench = commands.add_parser("benchmark", help="verse-identification benchmark of a model (or of its exports)")
    add_model_options(bench, "the .nemo, or exported .onnx files, to benchmark (each in turn, one process)")
    bench.add_argument("--output", required=True, nargs="+", help="benchmark JSON to write, one per --model")
    bench.add_argument("--log-probs", help="also save the per-sample CTC log-probabilities here (.npz)")
    bench.add_argument("--training-metadata", help="the trial's training_metadata.json: figures split by "
                                                   "whether each clip's speaker was trained on")
    bench.add_argument("--validation-manifest", help="the data stage's validation manifest: each model's confidence "
                                                     "threshold is chosen on its clips (else the default stands)")
    bench.add_argument("--device", default="cpu", help="cpu or cuda")
    bench.set_defaults(run=cmd_benchmark)

    browser = commands.add_parser("browser-check", help="an export's files run in headless Chromium by onnxruntime-web "
                                                        "(WASM, one thread), scored by the benchmark's matchers")
    add_model_options(browser, "the exported .onnx files (of one export folder)")
    browser.add_argument("--output", required=True, help="browser.json to write")
    browser.add_argument("--validation-manifest", help="for an export without its own confidence threshold: the "
                                                       "validation clips to choose it on (else the default stands)")
    browser.add_argument("--web-dir", help="the reference page's folder (default: the repository's web/)")
    browser.set_defaults(run=cmd_browser_check)

    asr = commands.add_parser("asr-benchmark", help="WER and CER of one model on the prepared ASR test set")
    add_config_options(asr)
    asr.add_argument("--model", required=True, help="the .nemo to score")
    asr.add_argument("--name", required=True, help="the model's name in the results (base, v1, ...)")
    asr.add_argument("--test-set", required=True, help="folder written by prepare-asr-benchmark")
    asr.add_argument("--output", required=True, help="JSON to write")
    asr.add_argument("--device", default="cpu", help="cpu or cuda")
    asr.set_defaults(run=cmd_asr_benchmark)

    windows = commands.add_parser("window-error", help="how far windowed inference is from whole clips, per window "
                                                       "and context length (what their defaults were chosen by)")
    windows.add_argument("--model", required=True, help="a .nemo or an export's .onnx")
    windows.add_argument("--corpus", required=True, help="a benchmark corpus folder (its manifest.json)")
    windows.add_argument("--window-seconds", type=float, nargs="+", required=True)
    windows.add_argument("--context-seconds", type=float, nargs="+", required=True)
    windows.add_argument("--output", help="JSON to write")
    windows.add_argument("--threads", type=int, default=0, help="onnxruntime threads (default: one per core)")
    windows.set_defaults(run=cmd_window_error)

    longform = commands.add_parser("benchmark-longform", help="continuous recitation: every long-form session of "
                                                              "the corpus heard whole and streamed")
    add_model_options(longform, "a model's .nemo and exported .onnx files")
    longform.add_argument("--corpus", required=True, help="a benchmark corpus folder with its sessions.json")
    longform.add_argument("--output", required=True, help="JSON to write (one block per format)")
    longform.add_argument("--threshold-from", help="the .nemo's benchmark JSON: its confidence threshold (an export "
                                                   "carries its own)")
    longform.add_argument("--chunk-seconds", type=float, help="streamed: audio per chunk (longform.chunk_seconds, 0.5)")
    longform.add_argument("--hold-seconds", type=float,
                          help="streamed: a verse is emitted once the reciter paused this long after it "
                               "(longform.hold_seconds, 1.0)")
    longform.add_argument("--sessions", type=int, help="judge the first N sessions only (longform.sessions: all)")
    longform.add_argument("--threads", type=int, default=0)
    longform.add_argument("--device", default="cpu", help="cpu or cuda (a .nemo's)")
    longform.set_defaults(run=cmd_benchmark_longform)

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
    board.add_argument("--longform", nargs="*", default=[], metavar="NAME=FILE",
                       help="each model's continuous-recitation benchmark (results/<model>/longform.json)")
    board.add_argument("--browser", nargs="*", default=[], metavar="NAME=FILE",
                       help="each model's browser check (results/<model>/export/browser.json)")
    board.add_argument("--max-seqacc-loss", type=float, default=schema_default("export", "max_seqacc_loss"),
                       help="the margin of an export's SeqAcc loss against its .nemo, a share "
                            "(config export.max_seqacc_loss; default %(default)s)")
    board.set_defaults(run=cmd_leaderboard)

    best = commands.add_parser("best-model", help="name the model to ship, from the leaderboard (best.json)")
    best.add_argument("--leaderboard", required=True, help="leaderboard JSON (results/leaderboard.json)")
    best.add_argument("--models", nargs="+", required=True, metavar="NAME=FILE", help="each model's .nemo by name")
    best.add_argument("--export-formats", nargs="*", default=[], help="the exports to list (fp32, int8, int4)")
    best.add_argument("--output", required=True, help="JSON to write (results/best.json)")
    best.set_defaults(run=cmd_best_model)

    card = commands.add_parser("model-card", help="a model's Hugging Face model card, from the leaderboard")
    add_config_options(card)
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
