#!/usr/bin/env python3
"""Build the embedded demo corpus in demo/: synthetic Quran recitation spoken by espeak-ng, in two domains.

    python scripts/make_demo_corpus.py [--out demo]

Needs espeak-ng (Debian: apt-get install espeak-ng). Deterministic for a given espeak-ng version:
voices, speeds, pitches, conditions, noise and gains all come from a seeded generator.

The demo is a domain shift, like the real project (scripts/demo_audio.py has the two domains):
- base_domain/: what the demo base model is pretrained on (rule pretrain_demo_base): three espeak-ng
  voices (a fourth for validation) at a broadcast pace, clean and full-band, labelled in the Tanzil
  "simple" text; a `save_to_disk` DatasetDict (train, validation) with the Quran-Ayah-Corpus columns.
- the fine-tuning sources and the benchmark, in the shifted domain: other voices reading slower, as
  reciters do, with noise, a phone-like band limit or a reverberant room; the Uthmani text:
  - quran_ayah_corpus/: a `save_to_disk` DatasetDict (train, validation) with the columns of
    rabah2026/Quran-Ayah-Corpus: audio, text (Uthmani, diacritized), duration.
  - retasy/data/train-00000-of-00001.parquet: the columns of RetaSy/quranic_audio_dataset
    (audio, Surah, Aya, duration_ms, final_label with its real values, reciter fields, ...).
  - benchmark/: a benchmark corpus in the protocol's format (manifest.json and audio) in voice
    variants no training clip uses: single verses (short, medium, long), spans of 2-6 verses joined by
    0.5 s of silence, the basmala said before a first verse, as "everyayah" WAV, "retasy" MP3 and
    44.1 kHz stereo WAV, and "user" phone-like M4A; three clips reuse training audio so that the
    leakage guard has something to catch. Then 8 negatives, in which the right answer is no verse
    (`expected_verses: []`, category and source "negative"): silence, room tone, white noise,
    babble, English, French and Arabic (not Quran) prose, a tune; they draw from a generator of
    their own (NEGATIVES_SEED), so that the 87 clips before them did not change when they came.
  - benchmark/sessions/ and benchmark/sessions.json (quranft.data.sessions): 12 long-form sessions of
    one to three minutes, each a benchmark voice reciting consecutive verses through one recording
    condition, joined by pauses of 0.4-2.5 s of room tone, every verse's start and end known to the
    sample; between some verses a long silence, noise, or speech that is not the Quran; the
    basmala before every surah but Al-Fatiha; a verse said twice, one skipped. From a generator of
    their own (SESSIONS_SEED), after everything else, so that the files before them stayed as they were.
Both fine-tuning datasets carry deliberately bad rows, listed in docs/demo.md.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1] / "src")]
from demo_audio import CONDITIONS, RATE, Voice, babble, encode, render, room_tone, shifted, speak, tune  # noqa: E402

from quranft.quran import tanzil  # noqa: E402

SEED = 20261122
AYAHS = Counter(surah for surah, _ in tanzil.verses())  # surah -> its number of verses
# Short surahs: enough distinct verses for a tiny model to learn, and spans of up to six verses.
DEMO_VERSES = [(1, a) for a in range(1, 8)] + [
    (s, a) for s in (103, 108, 109, 110, 111, 112, 113, 114) for a in range(1, AYAHS[s] + 1)
]
# The base domain has more of the Quran's text than the demo verses, as a pretrained model would.
BASE_VERSES = DEMO_VERSES + [
    (s, a) for s in (99, 100, 101, 102, 104, 105, 106, 107) for a in range(1, AYAHS[s] + 1)
]
SURAH_NAMES = {
    1: "الفاتحة", 103: "العصر", 108: "الكوثر", 109: "الكافرون", 110: "النصر",
    111: "المسد", 112: "الإخلاص", 113: "الفلق", 114: "الناس",
}

# The base domain: voice variants ("" is espeak-ng's default Arabic voice) at a broadcast pace.
BASE_TRAIN_VARIANTS = ["", "m1", "f1"]
BASE_VALIDATION_VARIANTS = ["m3"]
# The shifted domain: other variants, slower; each clip with its own rate and pitch. No variant
# speaks in two of the lists.
TRAIN_VARIANTS = ["m2", "f2", "Andy", "Annie", "klatt3"]
VALIDATION_VARIANTS = ["m4"]
RETASY_VARIANTS = ["f3", "m6", "Steph", "Gene"]
BENCHMARK_VARIANTS = ["m7", "f4", "Alicia", "Michael", "klatt2", "Edward"]
# Benchmark sources: (source, container, sample rate, channels)
EVERYAYAH, EVERYAYAH_WAV, RETASY_MP3, RETASY_STEREO, USER = (
    ("everyayah", "mp3", RATE, 1), ("everyayah", "wav", RATE, 1), ("retasy", "mp3", RATE, 1),
    ("retasy", "wav", 44100, 2), ("user", "m4a", 44100, 1))
SINGLE_SOURCES = [EVERYAYAH, RETASY_MP3, USER, EVERYAYAH_WAV, RETASY_MP3, USER, EVERYAYAH]
# Clips that tests pick by name keep their source; two 44.1 kHz stereo WAVs (large files).
FIXED_SOURCES = {(112, 2): EVERYAYAH_WAV, (114, 1): EVERYAYAH_WAV, (113, 3): RETASY_MP3, (103, 2): USER,
                 (1, 5): RETASY_STEREO, (109, 6): RETASY_STEREO}
SPANS = [(1, 1, 2), (1, 2, 4), (1, 3, 7), (1, 5, 7), (103, 1, 3), (103, 2, 3), (108, 1, 3), (108, 2, 3),
         (109, 1, 6), (109, 3, 5), (110, 1, 3), (110, 2, 3), (111, 1, 5), (111, 3, 5), (112, 1, 4),
         (112, 2, 4), (113, 1, 5), (113, 3, 5), (114, 1, 6), (114, 4, 6)]
BASMALA_SURAHS = (103, 108, 109, 110, 111, 112, 113, 114)
REPEATED_SINGLES = 14  # a second clip, in another voice and source, of every third demo verse
# The negatives (no verse to find) draw from a generator of their own, after every other clip, so
# that adding them left the rest of the corpus as it was, byte for byte.
NEGATIVES_SEED = 20261123
# Their sources, as above: the containers of the verse clips, one of them 44.1 kHz stereo.
NEGATIVE_WAV, NEGATIVE_MP3, NEGATIVE_M4A, NEGATIVE_M4A_STEREO = (
    ("negative", "wav", RATE, 1), ("negative", "mp3", RATE, 1), ("negative", "m4a", 44100, 1),
    ("negative", "m4a", 44100, 2))
# Ordinary prose, none of it the Quran's: (espeak-ng language, text).
ENGLISH = ("en-us", "The bus to the city centre leaves every twenty minutes. "
                    "Please keep your ticket until the end of the journey.")
FRENCH = ("fr-fr", "Le marché ouvre le samedi matin sur la place du village. "
                   "On y trouve du pain frais, du fromage et des légumes.")
ARABIC_WEATHER = ("ar", "نشرة الطقس: جو صحو غدا، والحرارة العظمى ثلاثون درجة.")
BABBLE = [("de", "Wir treffen uns morgen um halb neun vor dem Bahnhof und fahren dann gemeinsam los."),
          ("es", "La biblioteca del barrio cierra a las ocho, pero los sábados abre toda la mañana."),
          ("it", "Domani mattina andiamo al mercato a comprare la frutta e il pane fresco."),
          ("en-us", "I think the meeting has been moved to Thursday afternoon, after lunch.")]


def verses_of(surah: int, first: int = 1, last: int | None = None) -> list[tuple[int, int]]:
    """Verses first to last (the surah's end by default) of a surah."""
    return [(surah, ayah) for ayah in range(first, (last or AYAHS[surah]) + 1)]


# The long-form sessions draw from a generator of their own, after every other file, so that adding
# them left the rest of the corpus as it was, byte for byte.
SESSIONS_SEED = 20261206
# 16 kHz mono MP3 at 24 kbit/s on average: a session is long, and the demo folder small.
SESSION_BITRATE = 24000
# What a reciter says in a session that is no verse, besides the basmala (said by itself before the
# first verse of every surah but Al-Fatiha): prose (espeak-ng language, text), or a sound.
SESSION_PROSE = {
    "istiadha": ("ar", "أعوذ بالله من الشيطان الرجيم"),  # said before reciting, by custom; no verse
    "sadaqa": ("ar", "صدق الله العظيم"),  # said after reciting, by custom
    "aside_ar": ("ar", "من فضلك أغلق النافذة، الصوت عال في الخارج."),
    "aside_en": ("en-us", "Sorry, just a moment, someone is at the door."),
    "aside_fr": ("fr-fr", "Attends une seconde, je reviens tout de suite."),
}
SESSION_SOUNDS = ("silence", "noise", "ringtone")  # a pause of 3-8 s, a tap running, a phone ringing
# Each session: a benchmark voice, and what it says in order (verses, and names from the two above).
SESSIONS = [
    ("m7", ["istiadha", *verses_of(108), *verses_of(109), *verses_of(110)]),
    ("f4", [*verses_of(1), "silence", *verses_of(112)]),
    ("Alicia", [*verses_of(113, 1, 3), "aside_en", *verses_of(113, 4), *verses_of(114)]),
    ("Michael", [*verses_of(111), *verses_of(112, 1, 2), "ringtone", *verses_of(112, 3), *verses_of(113)]),
    ("klatt2", [*verses_of(103), "aside_ar", *verses_of(108), *verses_of(109)]),
    ("Edward", [*verses_of(1, 1, 5), (1, 5), *verses_of(1, 6), *verses_of(103)]),  # 1:5 said twice
    ("m7", [*verses_of(109), "silence", (110, 1), (110, 3), *verses_of(111)]),  # 110:2 skipped
    ("f4", ["istiadha", *verses_of(112), *verses_of(113), "noise", *verses_of(114), "sadaqa"]),
    ("Alicia", [*verses_of(1, 1, 4), "aside_fr", *verses_of(1, 5), *verses_of(110)]),
    ("Michael", [*verses_of(110), *verses_of(111), "silence", *verses_of(112), *verses_of(113), *verses_of(114)]),
    ("klatt2", ["istiadha", *verses_of(1), "noise", *verses_of(111)]),
    ("Edward", [*verses_of(113), *verses_of(114), *verses_of(1), "sadaqa"]),  # from the end back to the start
]


class Builder:
    def __init__(self, out: Path):
        self.out = out
        self.rng = np.random.default_rng(SEED)
        self._speech: dict[tuple[tuple[int, int], Voice], np.ndarray] = {}

    def speech(self, key: tuple[int, int], voice: Voice) -> np.ndarray:
        if (key, voice) not in self._speech:
            self._speech[(key, voice)] = speak(tanzil.verse(*key, variant="simple"), voice)
        return self._speech[(key, voice)]

    def voice(self, variant: str, base_domain: bool = False) -> Voice:
        """The variant at a rate and pitch of its own: a broadcast pace in the base domain, slower
        (a reciter's) in the shifted one."""
        speed = self.rng.integers(140, 176) if base_domain else self.rng.integers(105, 141)
        return Voice(variant, int(speed), int(self.rng.integers(30, 71)))

    def clip(self, key: tuple[int, int], variant: str, condition: str | None = None) -> np.ndarray:
        return shifted(self.speech(key, self.voice(variant)), self.rng, condition)

    # -- the base domain ------------------------------------------------------------------------
    def base_domain(self) -> dict[str, list[dict]]:
        def row(key, variant):
            audio = render(self.speech(key, self.voice(variant, base_domain=True)), self.rng, self.rng.uniform(35, 45))
            return {"audio": encode(audio, "mp3"), "text": tanzil.verse(*key, variant="simple"),
                    "duration": len(audio) / RATE}

        return {"train": [row(key, variant) for variant in BASE_TRAIN_VARIANTS for key in BASE_VERSES],
                "validation": [row(key, variant) for variant in BASE_VALIDATION_VARIANTS for key in DEMO_VERSES]}

    # -- Quran-Ayah-Corpus-like dataset ---------------------------------------------------------
    def quran_ayah_corpus(self) -> tuple[dict[str, list[dict]], dict[str, np.ndarray]]:
        splits: dict[str, list[dict]] = {"train": [], "validation": []}
        kept_audio: dict[str, np.ndarray] = {}
        for split, variants in (("train", TRAIN_VARIANTS), ("validation", VALIDATION_VARIANTS)):
            for variant in variants:
                for key in DEMO_VERSES:
                    audio = self.clip(key, variant)
                    row = {"audio": encode(audio, "mp3"), "text": tanzil.verse(*key), "duration": len(audio) / RATE}
                    kept_audio[f"{split}:{key[0]}:{key[1]}:{variant}"] = audio
                    splits[split].append(row)
        train = splits["train"]
        fatiha_2 = self.clip((1, 2), TRAIN_VARIANTS[0])
        long_speech = np.concatenate([self.speech((114, a), self.voice(TRAIN_VARIANTS[1])) for a in range(1, 7)])
        too_long = np.concatenate([long_speech, np.zeros(max(0, RATE * 31 - len(long_speech)), np.float32)])
        bad_rows = [
            # undecodable: bytes that are no audio container at all
            {"audio": b"RIFF\x00\x00\x00\x00not really a wave file", "text": tanzil.verse(112, 1), "duration": 2.0},
            # empty text with good audio
            {"audio": encode(fatiha_2, "mp3"), "text": "   ", "duration": len(fatiha_2) / RATE},
            # under 0.6 s
            {"audio": encode(fatiha_2[: int(0.4 * RATE)], "wav"), "text": tanzil.verse(1, 2), "duration": 0.4},
            # over 30 s (speech, then silence)
            {"audio": encode(too_long, "mp3"), "text": " ".join(tanzil.verse(114, a) for a in range(1, 7)), "duration": 31.0},
            # kept after down-mixing: stereo
            {"audio": encode(self.clip((113, 1), TRAIN_VARIANTS[2]), "wav", channels=2), "text": tanzil.verse(113, 1), "duration": None},
            # kept after resampling: 44.1 kHz
            {"audio": encode(self.clip((113, 2), TRAIN_VARIANTS[3]), "wav", rate=44100), "text": tanzil.verse(113, 2), "duration": None},
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
            variant = RETASY_VARIANTS[number % len(RETASY_VARIANTS)]
            spoken = key
            if label == "not_match_aya":
                spoken = DEMO_VERSES[(number * 5 + 20) % len(DEMO_VERSES)]
            audio = self.clip(spoken, variant)
            if label == "not_related_quran":
                audio = render(self.rng.normal(0, 0.05, RATE * 2).astype(np.float32), self.rng, 10)
            fmt = formats[number % len(formats)]
            rows.append({
                "audio": encode(audio, fmt, rate=44100 if fmt == "m4a" else RATE),
                "Surah": SURAH_NAMES[key[0]],
                "Aya": tanzil.verse(*key, variant="simple"),
                "duration_ms": int(round(1000 * len(audio) / RATE)),
                "create_date": f"2023-0{1 + number % 9}-1{number % 10}T10:00:00",
                "golden": number % 5 == 0,
                "final_label": label,
                "reciter_id": f"demo-reciter-{number % 9:02d}",
                "reciter_country": ["RU", "ID", "TR", "KZ", "NG"][number % 5],
                "reciter_gender": "female" if variant in ("f3", "Steph") else "male",
                "reciter_age": ["18-25", "26-35", "36-50"][number % 3],
                "reciter_qiraah": "hafs",
                "judgments_num": 3,
                "annotation_metadata": json.dumps({"synthetic": True, "voice": variant}),
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
        variants = iter(BENCHMARK_VARIANTS * 100)
        gap = np.zeros(RATE // 2, np.float32)

        def add(sample_id, verses, audio, source, category=None):
            name, fmt, rate, channels = source
            while any(s["id"] == sample_id for s in samples):
                sample_id += "_b"
            file = f"{sample_id}.{fmt}"
            (folder / file).write_bytes(encode(audio, fmt, rate=rate, channels=channels))
            seconds = len(audio) / RATE
            category = category or ("short" if seconds < 3 else "medium" if seconds < 6 else "long")
            entry = {"id": sample_id, "file": file}
            if verses:
                entry.update(surah=verses[0][0], ayah=verses[0][1])
            if len(verses) > 1:
                entry["ayah_end"] = verses[-1][1]
            entry.update({"category": category, "source": name,
                          "expected_verses": [{"surah": s, "ayah": a} for s, a in verses]})
            samples.append(entry)

        def condition(source):  # phone-like channel for user recordings, any condition otherwise
            return "phone" if source is USER else None

        # Single verses: every demo verse once, every third one a second time in another source.
        singles = DEMO_VERSES + DEMO_VERSES[1::3][:REPEATED_SINGLES]
        for number, key in enumerate(singles):
            source = FIXED_SOURCES.get(key) if number < len(DEMO_VERSES) else None
            source = source or SINGLE_SOURCES[number % len(SINGLE_SOURCES)]
            add(f"{source[0]}_{key[0]:03d}_{key[1]:03d}", [key], self.clip(key, next(variants), condition(source)), source)

        # Spans of 2-6 verses, 0.5 s of silence between verses.
        for number, (surah, first, last) in enumerate(SPANS):
            voice = self.voice(next(variants))
            parts = [part for ayah in range(first, last + 1) for part in (self.speech((surah, ayah), voice), gap)]
            source = EVERYAYAH_WAV if (surah, first, last) in ((112, 1, 4), (114, 1, 6)) else \
                [EVERYAYAH, RETASY_MP3, USER][number % 3]
            add(f"multi_{surah:03d}_{first:03d}_{last:03d}", [(surah, a) for a in range(first, last + 1)],
                shifted(np.concatenate(parts[:-1]), self.rng, condition(source)), source, "multi")

        # The basmala said before a first verse (not Al-Fatiha's): the truth is the verse alone. Said
        # and skipped: each of these verses also has a single-verse clip above.
        for number, surah in enumerate(BASMALA_SURAHS):
            voice = self.voice(next(variants))
            said = np.concatenate([speak(tanzil.basmala("simple"), voice), np.zeros(RATE // 3, np.float32),
                                   self.speech((surah, 1), voice)])
            source = [USER, EVERYAYAH, RETASY_MP3][number % 3]
            add(f"{source[0]}_{surah:03d}_001_basmala", [(surah, 1)], shifted(said, self.rng, condition(source)),
                source)

        # Planted leakage: audio that is also in the training data, in another container.
        add("leak_everyayah_113_004", [(113, 4)], quran_audio[f"train:113:4:{TRAIN_VARIANTS[1]}"], RETASY_STEREO,
            "short")
        leaked_retasy = next(i for i, row in enumerate(retasy_rows) if row["final_label"] == "correct" and i > 0)
        key = next(k for k in DEMO_VERSES if tanzil.verse(*k, variant="simple") == retasy_rows[leaked_retasy]["Aya"])
        add(f"leak_retasy_{key[0]:03d}_{key[1]:03d}", [key], retasy_audio[str(leaked_retasy)], RETASY_MP3, "short")
        joined = np.concatenate([quran_audio[f"train:110:1:{TRAIN_VARIANTS[2]}"], gap,
                                 quran_audio[f"train:110:2:{TRAIN_VARIANTS[2]}"]])
        add("leak_multi_110_001_002", [(110, 1), (110, 2)], joined, EVERYAYAH_WAV, "multi")

        for sample_id, audio, source in self.negatives():
            add(sample_id, [], audio, source, "negative")

        (folder / "manifest.json").write_text(
            json.dumps({"samples": samples}, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
        return samples

    def negatives(self) -> list[tuple[str, np.ndarray, tuple]]:
        """Clips in which the right answer is no verse, each (id, audio, source): a silent recording,
        room tone, white noise, babble, prose read in English, French and Arabic (a weather report,
        phone-like), a tune. Speech goes through the shifted domain's conditions, as the verses do."""
        rng = np.random.default_rng(NEGATIVES_SEED)

        def voice(language: str) -> Voice:
            variant = BENCHMARK_VARIANTS[int(rng.integers(len(BENCHMARK_VARIANTS)))]
            return Voice(variant, int(rng.integers(140, 171)), int(rng.integers(30, 71)), language)

        def read(prose: tuple[str, str], condition: str | None = None) -> np.ndarray:
            language, text = prose
            return shifted(speak(text, voice(language)), rng, condition)

        silence = rng.normal(0, 10 ** (-70 / 20), int(RATE * rng.uniform(3, 4))).astype(np.float32)  # a mic's floor
        voices = [speak(text, voice(language)) for language, text in BABBLE]
        return [
            ("negative_silence", silence, NEGATIVE_WAV),
            ("negative_room_tone", room_tone(rng, rng.uniform(4.5, 5.5)), NEGATIVE_M4A),
            ("negative_white_noise", rng.normal(0, 0.1, int(RATE * rng.uniform(3.5, 4.5))).astype(np.float32),
             NEGATIVE_MP3),
            ("negative_babble", shifted(babble(voices, rng, rng.uniform(5, 6)), rng, "room"), NEGATIVE_MP3),
            ("negative_english_speech", read(ENGLISH), NEGATIVE_M4A_STEREO),
            ("negative_french_speech", read(FRENCH), NEGATIVE_MP3),
            ("negative_arabic_speech", read(ARABIC_WEATHER, "phone"), NEGATIVE_M4A),
            ("negative_tune", shifted(tune(rng, 10), rng, "room"), NEGATIVE_MP3),
        ]

    def sessions(self) -> list[dict]:
        """Write the long-form sessions (SESSIONS) to benchmark/sessions/ and their truth to
        benchmark/sessions.json, and return its entries: each session one voice at its own rate and
        pitch (`_session_pieces`), laid out with pauses (`_lay_out`), then one of CONDITIONS over
        the whole, unpadded, so that every time stays where it was put."""
        rng = np.random.default_rng(SESSIONS_SEED)
        folder = self.out / "benchmark"
        (folder / "sessions").mkdir()
        entries = []
        for number, (variant, plan) in enumerate(SESSIONS):
            voice = Voice(variant, int(rng.integers(105, 141)), int(rng.integers(30, 71)))
            track, verses, non_recitation = _lay_out(_session_pieces(plan, voice, rng), rng)
            condition = CONDITIONS[number % len(CONDITIONS)]
            audio = shifted(track, rng, condition, pad=False)
            session_id = f"session_{number + 1:02d}"
            file = f"sessions/{session_id}.mp3"
            (folder / file).write_bytes(encode(audio, "mp3", bitrate=SESSION_BITRATE))
            entries.append({"id": session_id, "file": file, "speaker": variant, "source": "demo",
                            "condition": condition, "seconds": round(len(audio) / RATE, 7),
                            "verses": verses, "non_recitation": non_recitation})
        (folder / "sessions.json").write_text(
            json.dumps({"sessions": entries}, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return entries


def _session_pieces(plan: list, voice: Voice, rng: np.random.Generator) -> list[tuple[str, np.ndarray | None, tuple]]:
    """What a session's plan says, in order, each (kind, speech, verse): kind "verse", or a kind of
    non-recitation (quranft.data.sessions.KINDS), or one of SESSION_SOUNDS (made by `_lay_out`,
    speech None). The basmala comes before the first verse of a surah other than Al-Fatiha; prose
    is read by the session's voice, a little faster, in its language."""
    pieces = []
    for item in plan:
        if isinstance(item, tuple):
            if item[1] == 1 and item[0] != 1:
                pieces.append(("basmala", _voiced(speak(tanzil.basmala("simple"), voice)), None))
            pieces.append(("verse", _voiced(speak(tanzil.verse(*item, variant="simple"), voice)), item))
        elif item in SESSION_PROSE:
            language, text = SESSION_PROSE[item]
            prose_voice = Voice(voice.variant, int(rng.integers(140, 171)), voice.pitch, language)
            pieces.append(("speech", _voiced(speak(text, prose_voice)), None))
        elif item in SESSION_SOUNDS:
            pieces.append((item, None, None))
        else:
            raise ValueError(f"a session's plan holds {item!r}: neither a verse nor a name of SESSION_PROSE or SESSION_SOUNDS")
    return pieces


def _lay_out(pieces: list[tuple[str, np.ndarray | None, tuple]],
             rng: np.random.Generator) -> tuple[np.ndarray, list[dict], list[dict]]:
    """The session's clean track and its truth (verses, non-recitation, times in seconds to the
    sample): 0.5-1.5 s of room tone, the pieces joined by pauses of 0.4-2.5 s of room tone (0.3-1 s
    after a basmala; none around a silence, which is the whole gap), 0.5-1.5 s of room tone. The
    sounds are made here: a silence of 3-8 s of room tone, a tap running (noise in 500-4000 Hz,
    2-5 s, at half the verses' level) and a ringtone (a tune at 0.7 of it), both of kind "noise"."""
    level = float(np.sqrt(np.mean(np.concatenate([a for kind, a, _ in pieces if kind == "verse"]) ** 2)))
    parts = [room_tone(rng, rng.uniform(0.5, 1.5))]
    verses, non_recitation = [], []
    for index, (kind, audio, key) in enumerate(pieces):
        previous = pieces[index - 1][0] if index else None
        if index and "silence" not in (kind, previous):
            parts.append(room_tone(rng, rng.uniform(0.3, 1.0) if previous == "basmala" else rng.uniform(0.4, 2.5)))
        if kind == "silence":
            audio = room_tone(rng, rng.uniform(3, 8))
        elif kind == "noise":
            band = signal.butter(2, [500, 4000], btype="bandpass", fs=RATE, output="sos")
            burst = signal.sosfilt(band, rng.normal(0, 1, int(RATE * rng.uniform(2, 5))))
            audio = _at_level(burst * _fades(len(burst)), 0.5 * level)
        elif kind == "ringtone":
            kind, audio = "noise", _at_level(tune(rng, int(rng.integers(6, 11))), 0.7 * level)
        start = sum(len(part) for part in parts)
        parts.append(audio)
        times = {"start": round(start / RATE, 7), "end": round((start + len(audio)) / RATE, 7)}
        if kind == "verse":
            verses.append({"surah": key[0], "ayah": key[1], **times})
        else:
            non_recitation.append({"kind": kind, **times})
    parts.append(room_tone(rng, rng.uniform(0.5, 1.5)))
    return np.concatenate(parts), verses, non_recitation


def _voiced(speech: np.ndarray) -> np.ndarray:
    """espeak-ng's sound without its silent edges (the samples under a hundredth of its peak)."""
    loud = np.flatnonzero(np.abs(speech) > 0.01 * np.abs(speech).max())
    return speech[loud[0] : loud[-1] + 1]


def _at_level(audio: np.ndarray, rms: float) -> np.ndarray:
    return (audio * rms / max(float(np.sqrt(np.mean(audio**2))), 1e-12)).astype(np.float32)


def _fades(n: int, seconds: float = 0.2) -> np.ndarray:
    """Gains that fade n samples in and out over `seconds`."""
    return np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (RATE * seconds))


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

    quran_columns = {"text": datasets.Value("string"), "duration": datasets.Value("float64")}
    base_splits = builder.base_domain()
    datasets.DatasetDict(
        {split: _dataset(rows, quran_columns) for split, rows in base_splits.items()}
    ).save_to_disk(str(staging / "base_domain"))

    quran_splits, quran_audio = builder.quran_ayah_corpus()
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
    sessions = builder.sessions()

    # Swap in the four datasets; anything else in the folder (the demo base model) stays.
    out.mkdir(parents=True, exist_ok=True)
    for name in ("base_domain", "quran_ayah_corpus", "retasy", "benchmark"):
        shutil.rmtree(out / name, ignore_errors=True)
        (staging / name).rename(out / name)
    shutil.rmtree(staging)
    print(f"wrote {out}: {sum(len(r) for r in base_splits.values())} base-domain rows, "
          f"{sum(len(r) for r in quran_splits.values())} Quran-Ayah rows, "
          f"{len(retasy_rows)} RetaSy rows, {len(samples)} benchmark clips, {len(sessions)} sessions "
          f"({sum(s['seconds'] for s in sessions) / 60:.1f} minutes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
