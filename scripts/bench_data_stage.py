#!/usr/bin/env python3
"""Measure the data stage's throughput on a larger synthetic set, beside a plain per-row loop.

    python scripts/bench_data_stage.py [--clips 1000] [--workers 1 2 4] [--repeat 1] [--output bench.json]

The set is speech-like synthetic audio (harmonic tones at syllable rate), 2 to 12 s a clip, stored
as MP3 at 22.05 kHz (as EveryAyah's clips are) in a `save_to_disk` dataset. Measured:

- quranft's `prepare_source` (decode, down-mix, resample to 16 kHz, duration filter, content hash,
  leakage fingerprint against the demo benchmark corpus, FLAC encode, manifest) with each worker count;
- the simplest alternative: one loop over the rows that decodes with librosa.load (mono, 16 kHz),
  writes FLAC with soundfile and appends a manifest line; no hashing, no leakage guard.

Reported: clips per second and audio seconds per second, in total and per core used (the stage
starts no more decoders than the CPUs it may use: a larger worker count uses only those), the
speed-up over the first worker count, the 1-minute load average before each run and the CPU seconds
other processes took during it (another job on the machine makes the figures worthless). With
--repeat N every worker count runs N times, interleaved, and the fastest run is reported.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

SOURCE_RATE = 22050


def speech_like(seconds: float, rng: np.random.Generator) -> np.ndarray:
    n = int(seconds * SOURCE_RATE)
    t = np.arange(n) / SOURCE_RATE
    out = np.zeros(n, np.float32)
    step = int(0.12 * SOURCE_RATE)
    for start in range(0, n, step):
        f0 = rng.uniform(100, 250)
        seg = slice(start, min(n, start + step))
        for harmonic in range(1, 6):
            out[seg] += np.sin(2 * np.pi * f0 * harmonic * t[seg]) / harmonic
    out += rng.normal(0, 0.02, n).astype(np.float32)
    return (0.4 * out / np.abs(out).max()).astype(np.float32)


def make_dataset(path: Path, clips: int, seed: int = 0) -> float:
    """Write the synthetic set; return its total audio duration in seconds."""
    import datasets

    rng = np.random.default_rng(seed)
    audio, texts, total = [], [], 0.0
    for number in range(clips + 5):  # five more for a small validation split
        seconds = rng.uniform(2, 12)
        buffer = io.BytesIO()
        sf.write(buffer, speech_like(seconds, rng), SOURCE_RATE, format="MP3", subtype="MPEG_LAYER_III")
        audio.append({"bytes": buffer.getvalue(), "path": None})
        texts.append(f"قُلْ هُوَ ٱللَّهُ أَحَدٌ {number}")
        total += seconds if number < clips else 0.0
    features = datasets.Features({
        "audio": {"bytes": datasets.Value("binary"), "path": datasets.Value("string")},
        "text": datasets.Value("string"),
    })
    split = datasets.Dataset.from_dict({"audio": audio, "text": texts}, features=features)
    split = split.cast_column("audio", datasets.Audio())
    datasets.DatasetDict(
        {"train": split.select(range(clips)), "validation": split.select(range(clips, clips + 5))}
    ).save_to_disk(str(path))
    return total


def plain_loop(dataset_path: Path, out: Path) -> int:
    import datasets
    import librosa

    split = datasets.load_from_disk(str(dataset_path))["train"].cast_column("audio", datasets.Audio(decode=False))
    out.mkdir(parents=True)
    lines = []
    for index, row in enumerate(split):
        samples, rate = librosa.load(io.BytesIO(row["audio"]["bytes"]), sr=16000, mono=True)
        duration = len(samples) / rate
        if not 0.6 <= duration <= 30:
            continue
        path = out / f"{index:07d}.flac"
        sf.write(path, samples, rate, format="FLAC", subtype="PCM_16")
        lines.append(json.dumps({"audio_filepath": str(path), "duration": duration, "text": row["text"]}, ensure_ascii=False))
    (out / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)


@dataclass
class Timing:
    seconds: float = 0.0
    load_before: float = 0.0  # 1-minute load average
    others_cpu_seconds: float | None = None  # CPU time other processes took meanwhile (Linux only)


def _machine_busy_seconds() -> float | None:
    """CPU time the whole machine has been busy (or stolen by the hypervisor) since boot."""
    try:
        fields = Path("/proc/stat").read_text(encoding="ascii").split("\n", 1)[0].split()[1:9]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields)
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    """CPU time of this process and its finished children (the pool's workers, once shut down)."""
    usages = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return sum(usage.ru_utime + usage.ru_stime for usage in usages)


@contextmanager
def timed() -> Iterator[Timing]:
    """Wall time of the block, and how much CPU other processes took meanwhile: a run during which
    they took much is not a measurement of ours."""
    timing = Timing(load_before=round(os.getloadavg()[0], 2))
    busy, own = _machine_busy_seconds(), _own_cpu_seconds()
    started = time.perf_counter()
    yield timing
    timing.seconds = time.perf_counter() - started
    if busy is not None:
        others = _machine_busy_seconds() - busy - (_own_cpu_seconds() - own)
        timing.others_cpu_seconds = round(max(0.0, others), 2)


def main(argv: list[str] | None = None) -> int:
    # Imported here, not above: the data stage's spawned workers import this script again, and the
    # real stage's workers (under python -m quranft) import no command-line modules either.
    from quranft.config import validate_config
    from quranft.data.benchmark_index import build_index, write_index
    from quranft.data.decode_pool import usable_cpus
    from quranft.data.prepare import prepare_source

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=1000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4],
                        help="worker counts to measure; the speed-up is over the first")
    parser.add_argument("--repeat", type=int, default=1, help="runs per worker count; the fastest counts")
    parser.add_argument("--output", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-data-"))
    try:
        started = time.perf_counter()
        seconds = make_dataset(work / "dataset", args.clips)
        print(f"synthetic set: {args.clips} clips, {seconds / 3600:.2f} h of audio "
              f"(made in {time.perf_counter() - started:.0f} s)", flush=True)
        index, _ = build_index(REPO / "demo" / "benchmark")
        write_index(index, work / "fingerprints.npz")
        config = validate_config({
            "base_model": "unused.nemo",
            "benchmark": {"corpus": str(REPO / "demo" / "benchmark")},
            "sources": {"quran_ayah_corpus": {"dataset": str(work / "dataset"),
                                              "splits": {"train": "train", "validation": "validation"}}},
            "data": {"include_retasy": False, "max_train_samples": None},
            "trials": {"names": []},
        })
        runs = []

        def record(name, cores, timing: Timing, kept, **extra):
            elapsed = timing.seconds
            figures = {
                "method": name, "cores": cores, "seconds": round(elapsed, 2), "clips_kept": kept,
                "clips_per_s": round(args.clips / elapsed, 2),
                "audio_s_per_s": round(seconds / elapsed, 1),
                "clips_per_s_per_core": round(args.clips / elapsed / cores, 2),
                "audio_s_per_s_per_core": round(seconds / elapsed / cores, 1),
                "load_1min_before": timing.load_before, "others_cpu_s": timing.others_cpu_seconds,
                **extra,
            }
            runs.append(figures)
            print(json.dumps(figures), flush=True)

        best: dict[int, tuple[Timing, int]] = {}  # workers: the fastest run, clips kept
        for _ in range(args.repeat):
            for workers in args.workers:
                out = work / f"quranft-{workers}"
                with timed() as timing:
                    report = prepare_source("quran_ayah_corpus", config["sources"]["quran_ayah_corpus"],
                                            config["data"], out, benchmark_index=work / "fingerprints.npz",
                                            workers=workers)
                shutil.rmtree(out)
                if workers not in best or timing.seconds < best[workers][0].seconds:
                    best[workers] = (timing, report["splits"]["train"]["kept"])
        first = args.workers[0]
        for workers in args.workers:
            timing, kept = best[workers]
            # the stage starts no more decoders than the CPUs it may use (usable_cpus)
            record(f"quranft prepare_source, {workers} worker(s)", min(workers, usable_cpus()), timing,
                   kept, workers=workers, speedup_over_first=round(best[first][0].seconds / timing.seconds, 2))
        with timed() as timing:
            kept = plain_loop(work / "dataset", work / "plain")
        record("plain loop (librosa.load + soundfile.write)", 1, timing, kept)

        summary = {
            "clips": args.clips, "audio_hours": round(seconds / 3600, 3),
            "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                        "python": platform.python_version()},
            "runs": runs,
        }
        if args.output:
            Path(args.output).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
