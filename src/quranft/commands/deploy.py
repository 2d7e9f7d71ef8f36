"""The commands of what ships: the exports, and identifying the verses in recordings."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from quranft.commands.options import add_config_options, config_of
from quranft.config import ConfigError
from quranft.deploy.subtitles import SUBTITLES
from quranft.models.windowed import DEFAULT_CONTEXT_SECONDS, DEFAULT_WINDOW_SECONDS

log = logging.getLogger("quranft")


def cmd_export(args: argparse.Namespace) -> None:
    from quranft.deploy.export import DEFAULT_MAX_SECONDS, DEFAULT_PARITY_CLIPS, export_model
    from quranft.deploy.parity import clips_manifest

    settings = config_of(args)["export"] if (args.settings or args.config) else {}
    formats = args.formats or settings.get("formats", ["fp32", "int8"])
    if args.parity_manifest and args.clips:
        raise ConfigError("export: give --parity-manifest or --clips, not both")
    with tempfile.TemporaryDirectory(prefix="quranft-clips-") as folder:
        manifest, source = ((Path(args.parity_manifest), f"the manifest {args.parity_manifest}") if args.parity_manifest
                            else clips_manifest(args.clips, Path(folder)))
        result = export_model(args.model, args.out_dir, formats, manifest,
                              args.parity_clips or settings.get("parity_clips", DEFAULT_PARITY_CLIPS),
                              args.max_seconds or settings.get("max_seconds", DEFAULT_MAX_SECONDS), args.threads,
                              args.front_end, source)
    log.info("parity on %d clips, %s", result["parity"]["clips"], result["parity"]["source"])
    for fmt, record in result["formats"].items():
        agreement = result["parity"][fmt]
        log.info("%s: %s, %.1f MB, %d/%d transcripts as the .nemo's", args.model, record["file"], record["bytes"] / 1e6,
                 agreement["identical_transcripts"], agreement["clips"])


def cmd_export_front_end(args: argparse.Namespace) -> None:
    from quranft.deploy.graph import write_front_end
    from quranft.models import nemo_models

    fingerprint = write_front_end(nemo_models.restore(args.model, map_location="cpu"), args.output)
    log.info("%s: the front end of %s (preprocessor fingerprint %s)", args.output, args.model, fingerprint)


def cmd_identify(args: argparse.Namespace) -> int:
    from quranft.deploy.identify import run
    from quranft.models.windowed import Windowing

    windowing = Windowing(args.window_seconds, args.context_seconds)
    if args.stream:
        from quranft.deploy.stream import run_stream

        if len(args.files) != 1 or args.format not in ("text", "jsonl") or args.out_dir:
            raise ConfigError("--stream follows one recording (a file, or - for 16 kHz 16-bit PCM on standard "
                              "input), printed as lines or --json")
        return run_stream(args.model, args.files[0], args.threads, args.format == "jsonl", sys.stdout,
                          args.chunk_seconds, not args.no_wait, windowing, args.min_confidence)
    return 1 if run(args.model, args.files, args.threads, args.format, sys.stdout, windowing, args.out_dir,
                    args.min_confidence) else 0


def add_commands(commands) -> None:
    """The commands that make and use what ships: the exports, and identifying verses in recordings."""
    export = commands.add_parser("export", help="export a .nemo as ONNX (raw audio in, CTC log-probs out), quantized")
    add_config_options(export)
    export.add_argument("--model", required=True, help="the .nemo to export")
    export.add_argument("--out-dir", required=True, help="folder for model.onnx, model.int8.onnx, ..., export.json")
    export.add_argument("--formats", nargs="+", choices=["fp32", "int8", "int4"],
                        help="formats to write (default: the config's export.formats, else fp32 int8)")
    export.add_argument("--parity-manifest", help="manifest (JSONL) of the clips to measure parity on (the "
                                                  "workflow's validation manifest)")
    export.add_argument("--clips", nargs="+", metavar="FILE",
                        help="the clips to measure parity on: one manifest (JSONL) or audio files (default: the "
                             "demo's validation clips, demo/quran_ayah_corpus)")
    export.add_argument("--parity-clips", type=int, help="how many of the clips (default 100)")
    export.add_argument("--max-seconds", type=float, help="the longest clip the graph takes (default 40)")
    export.add_argument("--threads", type=int, default=0, help="onnxruntime threads for the parity check")
    export.add_argument("--front-end", help="a front end (export-front-end) to reuse when the model's preprocessor "
                                            "is the one it was made from")
    export.set_defaults(run=cmd_export)

    front_end = commands.add_parser("export-front-end", help="export a .nemo's front end alone, for exports to reuse")
    front_end.add_argument("--model", required=True, help="the .nemo (the base model)")
    front_end.add_argument("--output", required=True, help="the front end's .onnx")
    front_end.set_defaults(run=cmd_export_front_end)

    identify = commands.add_parser("identify", help="the verses recited in audio files of any length, with their "
                                                    "times, by a .nemo or an .onnx")
    identify.add_argument("--model", required=True, help="a .nemo, or an export's model*.onnx")
    identify.add_argument("files", nargs="+", help="audio files (any container ffmpeg or libsndfile decodes)")
    formats = identify.add_mutually_exclusive_group()
    formats.add_argument("--format", choices=("text", "jsonl", "tsv", *SUBTITLES), default="text",
                         help="text (default): a line per verse (file, start-end, verse and surah, confidence), "
                              "'no verse' or the error; jsonl: one JSON object a file; tsv: a header row (file, "
                              "start, end, surah, ayah, label, surah_name, confidence), then a row per verse; "
                              "srt, vtt: a subtitle a file, a cue per verse (none for no verse), to --out-dir (to "
                              "stdout for a single file). text, jsonl and tsv go to stdout; in tsv, srt and vtt a "
                              "failed file's error line goes to stderr")
    formats.add_argument("--json", dest="format", action="store_const", const="jsonl",
                         help="the same as --format jsonl")
    identify.add_argument("--out-dir", help="for srt and vtt: write <stem>.srt or <stem>.vtt there for each file")
    identify.add_argument("--window-seconds", type=float, default=DEFAULT_WINDOW_SECONDS,
                          help="a longer file goes through the model in windows of this length (default "
                               f"{DEFAULT_WINDOW_SECONDS:g}; an export's at most its max_seconds)")
    identify.add_argument("--context-seconds", type=float, default=DEFAULT_CONTEXT_SECONDS,
                          help="of each window, the seconds on each side that only inform its centre (default "
                               f"{DEFAULT_CONTEXT_SECONDS:g})")
    identify.add_argument("--min-confidence", type=float,
                          help="no verse is reported under this confidence (0-1; default: the export's own, chosen on "
                               "validation clips, or the one in benchmark.json beside a .nemo, else 0.6)")
    identify.add_argument("--stream", action="store_true",
                          help="follow one recording as it arrives (a file read at real time, or - for raw 16 kHz "
                               "mono 16-bit PCM on standard input): each verse printed once confirmed, never taken "
                               "back, after the seconds of audio received")
    identify.add_argument("--chunk-seconds", type=float, default=0.5, help="with --stream: audio per chunk (0.5)")
    identify.add_argument("--no-wait", action="store_true", help="with --stream: read a file as fast as it goes, "
                                                                 "not at real time")
    identify.add_argument("--threads", type=int, default=0, help="onnxruntime threads (default: one per core)")
    identify.set_defaults(run=cmd_identify)
