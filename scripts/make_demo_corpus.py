#!/usr/bin/env python3
"""Build the embedded demo corpus in demo/: synthetic Quran recitation spoken by espeak-ng.

    python scripts/make_demo_corpus.py [--out demo]

Needs espeak-ng (Debian: apt-get install espeak-ng). Deterministic for a given espeak-ng version:
voices, speeds, pitches, noise and gains all come from a seeded generator.

What it writes mirrors the real sources' schemas, so that the real code path runs on it:
- quran_ayah_corpus/: a `save_to_disk` DatasetDict (train, validation) with the columns of
  rabah2026/Quran-Ayah-Corpus: audio, text (Uthmani, diacritized), duration.
- retasy/data/train-00000-of-00001.parquet: the columns of RetaSy/quranic_audio_dataset
  (audio, Surah, Aya, duration_ms, final_label with its real values, reciter fields, ...).
- benchmark/: a benchmark corpus in the protocol's format (manifest.json and audio), in voices and
  settings that differ from the training clips, single- and multi-verse, in WAV, 44.1 kHz stereo WAV,
  MP3 and M4A; three clips reuse training audio so that the leakage guard has something to catch.
Both datasets carry deliberately bad rows, listed in demo/README.md.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from quranft import quran_text  # noqa: E402

RATE = 16000
SEED = 20260227
# Short surahs: enough distinct verses for a tiny model to learn, and spans of up to six verses.
DEMO_VERSES = [(1, a) for a in range(1, 8)] + [
    (s, a) for s in (103, 108, 109, 110, 111, 112, 113, 114) for a in range(1, quran_text.ayah_count(s) + 1)
]
SURAH_NAMES = {
    1: "الفاتحة", 103: "العصر", 108: "الكوثر", 109: "الكافرون", 110: "النصر",
    111: "المسد", 112: "الإخلاص", 113: "الفلق", 114: "الناس",
}


@dataclass(frozen=True)
class Voice:
    variant: str
    speed: int
    pitch: int


TRAIN_VOICES = [Voice("m1", 130, 45), Voice("m3", 150, 55), Voice("f2", 135, 65), Voice("m5", 145, 38)]
VALIDATION_VOICES = [Voice("m2", 140, 50)]
RETASY_VOICES = [Voice("f3", 120, 70), Voice("m4", 125, 35), Voice("klatt", 135, 50), Voice("f1", 128, 60)]
BENCHMARK_VOICES = [Voice("m7", 138, 48), Voice("f4", 132, 62), Voice("m6", 142, 42), Voice("klatt2", 128, 52)]


def speak(text: str, voice: Voice) -> np.ndarray:
    """espeak-ng's rendering of `text` as float32 at 16 kHz."""
    result = subprocess.run(
        ["espeak-ng", "-v", f"ar+{voice.variant}", "-s", str(voice.speed), "-p", str(voice.pitch), "--stdout", text],
        capture_output=True,
        check=True,
    )
    samples, rate = sf.read(io.BytesIO(result.stdout), dtype="float32")
    return soxr.resample(samples, rate, RATE).astype(np.float32)


def render(speech: np.ndarray, rng: np.random.Generator, snr_db: float) -> np.ndarray:
    """Pad with a little silence, set a random level and add noise at `snr_db`."""
    lead, tail = (int(RATE * rng.uniform(0.1, 0.35)) for _ in range(2))
    audio = np.concatenate([np.zeros(lead, np.float32), speech, np.zeros(tail, np.float32)])
    audio = audio * (rng.uniform(0.4, 0.85) / max(float(np.abs(audio).max()), 1e-6))
    level = np.sqrt(np.mean(speech**2)) * np.abs(audio).max() / max(float(np.abs(speech).max()), 1e-6)
    noise = rng.normal(0.0, level * 10 ** (-snr_db / 20), len(audio))
    return np.clip(audio + noise, -1, 1).astype(np.float32)


def encode(audio: np.ndarray, fmt: str, rate: int = RATE, channels: int = 1) -> bytes:
    """Bytes of `audio` (16 kHz mono) in a container: wav, flac, mp3, ogg or m4a."""
    if rate != RATE:
        audio = soxr.resample(audio, RATE, rate).astype(np.float32)
    if channels == 2:  # a slightly different right channel, as from a real stereo recording
        audio = np.stack([audio, 0.8 * audio], axis=1)
    if fmt == "m4a":
        return _encode_m4a(audio, rate)
    subtype = {"wav": "PCM_16", "flac": "PCM_16", "mp3": "MPEG_LAYER_III", "ogg": "VORBIS"}[fmt]
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format=fmt.upper(), subtype=subtype)
    return buffer.getvalue()


def _encode_m4a(audio: np.ndarray, rate: int) -> bytes:
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono" if audio.ndim == 1 else "stereo"
        planar = audio.reshape(1, -1) if audio.ndim == 1 else audio.T.copy()
        frame = av.AudioFrame.from_ndarray(planar.astype(np.float32), format="fltp", layout=stream.layout.name)
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


class Builder:
    def __init__(self, out: Path):
        self.out = out
        self.rng = np.random.default_rng(SEED)
        self._speech: dict[tuple[tuple[int, int], Voice], np.ndarray] = {}

    def speech(self, key: tuple[int, int], voice: Voice) -> np.ndarray:
        if (key, voice) not in self._speech:
            self._speech[(key, voice)] = speak(quran_text.verse(*key, variant="simple"), voice)
        return self._speech[(key, voice)]

    def clip(self, key: tuple[int, int], voice: Voice, snr: tuple[float, float] = (22, 35)) -> np.ndarray:
        return render(self.speech(key, voice), self.rng, self.rng.uniform(*snr))

    # -- Quran-Ayah-Corpus-like dataset ---------------------------------------------------------
    def quran_ayah_corpus(self) -> tuple[dict[str, list[dict]], dict[str, np.ndarray]]:
        splits: dict[str, list[dict]] = {"train": [], "validation": []}
        kept_audio: dict[str, np.ndarray] = {}
        for split, voices in (("train", TRAIN_VOICES), ("validation", VALIDATION_VOICES)):
            for voice in voices:
                for key in DEMO_VERSES:
                    audio = self.clip(key, voice)
                    row = {"audio": encode(audio, "mp3"), "text": quran_text.verse(*key), "duration": len(audio) / RATE}
                    kept_audio[f"{split}:{key[0]}:{key[1]}:{voice.variant}"] = audio
                    splits[split].append(row)
        train = splits["train"]
        fatiha_2 = self.clip((1, 2), TRAIN_VOICES[0])
        long_speech = np.concatenate([self.speech((114, a), TRAIN_VOICES[1]) for a in range(1, 7)])
        too_long = np.concatenate([long_speech, np.zeros(RATE * 31 - len(long_speech), np.float32)])
        bad_rows = [
            # undecodable: bytes that are no audio container at all
            {"audio": b"RIFF\x00\x00\x00\x00not really a wave file", "text": quran_text.verse(112, 1), "duration": 2.0},
            # empty text with good audio
            {"audio": encode(fatiha_2, "mp3"), "text": "   ", "duration": len(fatiha_2) / RATE},
            # under 0.6 s
            {"audio": encode(fatiha_2[: int(0.4 * RATE)], "wav"), "text": quran_text.verse(1, 2), "duration": 0.4},
            # over 30 s (speech, then silence)
            {"audio": encode(too_long, "mp3"), "text": " ".join(quran_text.verse(114, a) for a in range(1, 7)), "duration": 31.0},
            # kept after down-mixing: stereo
            {"audio": encode(self.clip((113, 1), TRAIN_VOICES[2]), "wav", channels=2), "text": quran_text.verse(113, 1), "duration": None},
            # kept after resampling: 44.1 kHz
            {"audio": encode(self.clip((113, 2), TRAIN_VOICES[3]), "wav", rate=44100), "text": quran_text.verse(113, 2), "duration": None},
            # a duplicate of the first train row, byte for byte
            dict(train[0]),
        ]
        for row in bad_rows:
            if row["duration"] is None:
                row["duration"] = round(sf.info(io.BytesIO(row["audio"])).duration, 3)
        # Interleave the bad rows so that they do not all sit at the end.
        for offset, row in enumerate(bad_rows):
            train.insert(7 + 13 * offset, row)
        return splits, kept_audio

    # -- RetaSy-like dataset --------------------------------------------------------------------
    def retasy(self) -> tuple[list[dict], dict[str, np.ndarray]]:
        kept_labels = ["correct"] * 18 + [None] * 8 + ["multiple_aya", "in_complete"]
        dropped_labels = ["in_correct", "not_related_quran", "not_match_aya"] * 2
        labels = []  # a dropped label after every three kept ones, as in a real, mixed dataset
        for number, label in enumerate(kept_labels):
            labels.append(label)
            if number % 3 == 2 and dropped_labels:
                labels.append(dropped_labels.pop(0))
        formats = ["wav", "ogg", "ogg", "mp3", "m4a", "ogg"]
        rows, audio_by_id = [], {}
        for number, label in enumerate(labels):
            key = DEMO_VERSES[(number * 5 + 3) % len(DEMO_VERSES)]
            voice = RETASY_VOICES[number % len(RETASY_VOICES)]
            spoken = key
            if label == "not_match_aya":
                spoken = DEMO_VERSES[(number * 5 + 20) % len(DEMO_VERSES)]
            audio = self.clip(spoken, voice, snr=(12, 22))
            if label == "not_related_quran":
                audio = render(self.rng.normal(0, 0.05, RATE * 2).astype(np.float32), self.rng, 10)
            fmt = formats[number % len(formats)]
            rows.append({
                "audio": encode(audio, fmt, rate=44100 if fmt == "m4a" else RATE),
                "Surah": SURAH_NAMES[key[0]],
                "Aya": quran_text.verse(*key, variant="simple"),
                "duration_ms": int(round(1000 * len(audio) / RATE)),
                "create_date": f"2023-0{1 + number % 9}-1{number % 10}T10:00:00",
                "golden": number % 5 == 0,
                "final_label": label,
                "reciter_id": f"demo-reciter-{number % 9:02d}",
                "reciter_country": ["RU", "ID", "TR", "KZ", "NG"][number % 5],
                "reciter_gender": "female" if voice.variant.startswith("f") else "male",
                "reciter_age": ["18-25", "26-35", "36-50"][number % 3],
                "reciter_qiraah": "hafs",
                "judgments_num": 3,
                "annotation_metadata": json.dumps({"synthetic": True, "voice": voice.variant}),
            })
            audio_by_id[str(number)] = audio
        rows[9]["Aya"] = ""  # an empty text
        return rows, audio_by_id

    # -- benchmark corpus -----------------------------------------------------------------------
    def benchmark(self, quran_audio: dict[str, np.ndarray], retasy_rows: list[dict],
                  retasy_audio: dict[str, np.ndarray]) -> list[dict]:
        folder = self.out / "benchmark"
        folder.mkdir(parents=True)
        samples = []

        def add(sample_id, verses, audio, fmt, category, source, rate=RATE, channels=1):
            file = f"{sample_id}.{fmt}"
            (folder / file).write_bytes(encode(audio, fmt, rate=rate, channels=channels))
            surah, ayah = verses[0]
            entry = {"id": sample_id, "file": file, "surah": surah, "ayah": ayah}
            if len(verses) > 1:
                entry["ayah_end"] = verses[-1][1]
            entry.update({
                "category": category, "source": source,
                "expected_verses": [{"surah": s, "ayah": a} for s, a in verses],
            })
            samples.append(entry)

        settings = [("wav", RATE, 1, "everyayah"), ("wav", 44100, 2, "retasy"), ("mp3", RATE, 1, "retasy"),
                    ("m4a", 44100, 1, "user")]
        singles = [(1, 1), (1, 5), (1, 7), (103, 2), (108, 1), (109, 6), (110, 3), (111, 4), (112, 2),
                   (112, 4), (113, 3), (113, 5), (114, 1), (114, 4)]
        for number, key in enumerate(singles):
            voice = BENCHMARK_VOICES[number % len(BENCHMARK_VOICES)]
            audio = self.clip(key, voice, snr=(15, 30))
            fmt, rate, channels, source = settings[number % len(settings)]
            seconds = len(audio) / RATE
            category = "short" if seconds < 3 else "medium" if seconds < 6 else "long"
            add(f"{source}_{key[0]:03d}_{key[1]:03d}", [key], audio, fmt, category, source, rate, channels)

        spans = [(1, 2, 4), (103, 1, 3), (112, 1, 4), (113, 1, 5), (114, 1, 6)]
        for number, (surah, first, last) in enumerate(spans):
            voice = BENCHMARK_VOICES[(number + 1) % len(BENCHMARK_VOICES)]
            gap = np.zeros(RATE // 2, np.float32)
            parts = []
            for ayah in range(first, last + 1):
                parts += [self.speech((surah, ayah), voice), gap]
            audio = render(np.concatenate(parts[:-1]), self.rng, self.rng.uniform(20, 30))
            add(f"multi_{surah:03d}_{first:03d}_{last:03d}", [(surah, a) for a in range(first, last + 1)],
                audio, "wav", "multi", "everyayah")

        # The basmala said before a verse that is not Al-Fatiha's first: the truth is the verse alone.
        voice = BENCHMARK_VOICES[2]
        with_basmala = np.concatenate([speak(quran_text.basmala("simple"), voice), np.zeros(RATE // 3, np.float32),
                                       self.speech((112, 1), voice)])
        add("user_112_001_basmala", [(112, 1)], render(with_basmala, self.rng, 25), "m4a", "short", "user", 44100)

        # Planted leakage: audio that is also in the training data, in another container.
        add("leak_everyayah_113_004", [(113, 4)], quran_audio["train:113:4:m3"], "wav", "short", "everyayah", 44100, 2)
        leaked_retasy = next(i for i, row in enumerate(retasy_rows) if row["final_label"] == "correct" and i > 0)
        key = next(k for k in DEMO_VERSES if quran_text.verse(*k, variant="simple") == retasy_rows[leaked_retasy]["Aya"])
        add(f"leak_retasy_{key[0]:03d}_{key[1]:03d}", [key], retasy_audio[str(leaked_retasy)], "mp3", "short", "retasy")
        gap = np.zeros(RATE // 2, np.float32)
        joined = np.concatenate([quran_audio["train:110:1:f2"], gap, quran_audio["train:110:2:f2"]])
        add("leak_multi_110_001_002", [(110, 1), (110, 2)], joined, "wav", "multi", "everyayah")

        (folder / "manifest.json").write_text(
            json.dumps({"samples": samples}, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
        return samples


def _dataset(rows: list[dict], columns: dict):
    """A Dataset whose `audio` column is an Audio feature holding the given encoded bytes.

    The audio is stored as a plain {bytes, path} struct and then cast: encoding through the Audio
    feature itself would need torchcodec.
    """
    import datasets

    features = datasets.Features(
        {"audio": {"bytes": datasets.Value("binary"), "path": datasets.Value("string")}, **columns}
    )
    table = {"audio": [{"bytes": row["audio"], "path": None} for row in rows]}
    table.update({name: [row[name] for row in rows] for name in columns})
    return datasets.Dataset.from_dict(table, features=features).cast_column("audio", datasets.Audio())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo", help="folder whose datasets to (re)create (default: demo)")
    args = parser.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        parser.error("espeak-ng is not installed (Debian: apt-get install espeak-ng)")

    import datasets

    out = Path(args.out)
    staging = out.with_name(out.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    builder = Builder(staging)

    quran_splits, quran_audio = builder.quran_ayah_corpus()
    quran_columns = {"text": datasets.Value("string"), "duration": datasets.Value("float64")}
    datasets.DatasetDict(
        {split: _dataset(rows, quran_columns) for split, rows in quran_splits.items()}
    ).save_to_disk(str(staging / "quran_ayah_corpus"))

    retasy_rows, retasy_audio = builder.retasy()
    retasy_columns = {
        "Surah": datasets.Value("string"), "Aya": datasets.Value("string"),
        "duration_ms": datasets.Value("int64"), "create_date": datasets.Value("string"),
        "golden": datasets.Value("bool"), "final_label": datasets.Value("string"),
        "reciter_id": datasets.Value("string"), "reciter_country": datasets.Value("string"),
        "reciter_gender": datasets.Value("string"), "reciter_age": datasets.Value("string"),
        "reciter_qiraah": datasets.Value("string"), "judgments_num": datasets.Value("int64"),
        "annotation_metadata": datasets.Value("string"),
    }
    (staging / "retasy" / "data").mkdir(parents=True)
    _dataset(retasy_rows, retasy_columns).to_parquet(
        str(staging / "retasy" / "data" / "train-00000-of-00001.parquet")
    )

    samples = builder.benchmark(quran_audio, retasy_rows, retasy_audio)

    # Swap in the three datasets; anything else in the folder (the demo base model) stays.
    out.mkdir(parents=True, exist_ok=True)
    for name in ("quran_ayah_corpus", "retasy", "benchmark"):
        shutil.rmtree(out / name, ignore_errors=True)
        (staging / name).rename(out / name)
    shutil.rmtree(staging)
    print(f"wrote {out}: {sum(len(r) for r in quran_splits.values())} Quran-Ayah rows, "
          f"{len(retasy_rows)} RetaSy rows, {len(samples)} benchmark clips")
    return 0


if __name__ == "__main__":
    sys.exit(main())
