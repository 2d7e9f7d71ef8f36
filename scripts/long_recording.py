#!/usr/bin/env python3
"""A long recording made of benchmark clips of known verses, each verse's start and end known to
the sample, and how well `identify`'s verses match it.

    python scripts/long_recording.py make --corpus demo/benchmark --minutes 10.5 --out long.wav [--clips ID ...]
    python scripts/long_recording.py score --truth long.json --found found.jsonl [--tolerance 1.0]

`make` joins the corpus's single-verse clips (its `multi` clips and negatives left out) in mushaf
order, again and again until the length is reached, with pauses of 0.8 to 2.5 s of faint noise
between them (seeded), and writes the WAV (16 kHz mono) and beside it <out>.json: each verse's
surah, ayah, start and end (seconds: where the clip's recitation is, its leading and trailing
silence trimmed) and its clip with the clip's own edges.

`score` reads identify's --json output for that file and counts, per true verse, whether a found
verse of the same number overlaps it (each found verse matched once, in order), and the boundary
error (|start| and |end| differences) of those matched; prints a JSON summary: recall, precision,
the share of matched boundaries within --tolerance seconds, the median and largest error.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

RATE = 16000
SEED = 20261206
TRIM_DB = 20


def single_verse_clips(corpus: Path, ids: list[str] | None = None) -> list[tuple[str, tuple[int, int], Path]]:
    """(id, verse, audio path) of the corpus's single-verse clips (its `multi` clips and negatives
    left out), in mushaf order; only those of `ids`, in their order, when given."""
    from quranft.data.benchmark_corpus import load_samples

    samples = {s.id: s for s in load_samples(corpus) if len(s.expected_verses) == 1 and s.category != "multi"}
    chosen = [samples[i] for i in ids] if ids else sorted(samples.values(), key=lambda s: (s.expected_verses[0], s.id))
    return [(s.id, s.expected_verses[0], corpus / s.file) for s in chosen]


def make(corpus: Path, minutes: float, out: Path, seed: int = SEED, ids: list[str] | None = None) -> list[dict]:
    """Write the recording of the corpus's single-verse clips (those of `ids`, in their order, when
    given), over and over until `minutes`, and its truth (<out>.json); returns the truth."""
    from quranft.data.audio import load_audio

    clips = single_verse_clips(corpus, ids)
    audio = {clip_id: load_audio(path) for clip_id, _, path in clips}
    # Where each clip's recitation is: its leading and trailing silence, room tail and noise
    # trimmed (librosa, 20 dB under the clip's peak, 8 ms hops), so that a verse's true interval is
    # when it is recited, as a long-form session's is, not the clip file's edges.
    recited = {clip_id: tuple(int(i) for i in librosa.effects.trim(clip, top_db=TRIM_DB, frame_length=512,
                                                                   hop_length=128)[1])
               for clip_id, clip in audio.items()}
    rng = np.random.default_rng(seed)
    pieces, truth, at = [], [], 0
    while at < minutes * 60 * RATE:
        for clip_id, (surah, ayah), _ in clips:
            pause = int(rng.uniform(0.8, 2.5) * RATE)
            pieces.append((0.002 * rng.standard_normal(pause)).astype(np.float32))
            at += pause
            clip = audio[clip_id]
            first, last = recited[clip_id]
            truth.append({"surah": surah, "ayah": ayah, "start": round((at + first) / RATE, 4),
                          "end": round((at + last) / RATE, 4), "clip": clip_id,
                          "clip_start": round(at / RATE, 4), "clip_end": round((at + len(clip)) / RATE, 4)})
            pieces.append(clip)
            at += len(clip)
            if at >= minutes * 60 * RATE:
                break
    sf.write(out, np.concatenate(pieces), RATE, subtype="PCM_16")
    out.with_suffix(".json").write_text(json.dumps({"seconds": at / RATE, "verses": truth}, indent=1),
                                        encoding="utf-8")
    return truth


def score(truth: list[dict], found: list[dict], tolerance: float = 1.0) -> dict:
    """Recall, precision and boundary errors of the found verses against the true ones (module
    docstring)."""
    used: set[int] = set()
    errors: list[float] = []
    matched = 0
    for verse in truth:
        for number, candidate in enumerate(found):
            if number in used or (candidate["surah"], candidate["ayah"]) != (verse["surah"], verse["ayah"]):
                continue
            if candidate["start"] < verse["end"] and verse["start"] < candidate["end"]:
                used.add(number)
                matched += 1
                errors += [abs(candidate["start"] - verse["start"]), abs(candidate["end"] - verse["end"])]
                break
    return {"true_verses": len(truth), "found_verses": len(found), "matched": matched,
            "recall": matched / len(truth) if truth else None,
            "precision": matched / len(found) if found else None,
            "boundaries_within_tolerance": sum(e <= tolerance for e in errors) / len(errors) if errors else None,
            "tolerance_seconds": tolerance,
            "boundary_error_median": statistics.median(errors) if errors else None,
            "boundary_error_max": max(errors) if errors else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    made = commands.add_parser("make")
    made.add_argument("--corpus", type=Path, default=REPO / "demo" / "benchmark")
    made.add_argument("--minutes", type=float, required=True)
    made.add_argument("--out", type=Path, required=True)
    made.add_argument("--seed", type=int, default=SEED)
    made.add_argument("--clips", nargs="+", help="the ids of the clips to use, in this order (default: every "
                                                 "single-verse clip, in mushaf order)")
    scored = commands.add_parser("score")
    scored.add_argument("--truth", type=Path, required=True)
    scored.add_argument("--found", type=Path, required=True, help="identify --json output for the recording")
    scored.add_argument("--tolerance", type=float, default=1.0)
    args = parser.parse_args(argv)
    if args.command == "make":
        truth = make(args.corpus, args.minutes, args.out, args.seed, args.clips)
        print(f"{args.out}: {len(truth)} verses, {truth[-1]['end'] / 60:.1f} minutes")
        return 0
    truth = json.loads(args.truth.read_text(encoding="utf-8"))["verses"]
    found = [verse for line in args.found.read_text(encoding="utf-8").splitlines() if line.strip()
             for verse in json.loads(line)["verses"]]
    print(json.dumps(score(truth, found, args.tolerance), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
