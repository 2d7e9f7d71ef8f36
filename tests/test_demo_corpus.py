"""The embedded demo corpus mirrors the real sources' schemas, carries the planted bad rows, and is
a domain shift: the base domain apart from the fine-tuning sources and the benchmark."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter

import datasets
import pytest

from conftest import REPO
from quranft.data.audio import load_audio
from quranft.data.benchmark_corpus import load_samples
from quranft.data.sessions import load_sessions
from quranft.quran.tanzil import verse

RETASY_COLUMNS = {
    "audio", "Surah", "Aya", "duration_ms", "create_date", "golden", "final_label", "reciter_id",
    "reciter_country", "reciter_gender", "reciter_age", "reciter_qiraah", "judgments_num", "annotation_metadata",
}


def check_corpus(root):
    base = datasets.load_from_disk(str(root / "base_domain"))
    assert set(base) == {"train", "validation"} and set(base["train"].column_names) == {"audio", "text", "duration"}
    assert verse(112, 1, variant="simple") in base["validation"]["text"]  # the base domain's text variant
    assert len(base["train"]) > len(base["validation"]) >= 40

    quran = datasets.load_from_disk(str(root / "quran_ayah_corpus"))
    assert set(quran) == {"train", "validation"}
    assert set(quran["train"].column_names) == {"audio", "text", "duration"}
    assert isinstance(quran["train"].features["audio"], datasets.Audio)
    texts = set(quran["validation"]["text"])
    assert verse(112, 1) in texts and verse(1, 1) in texts  # Uthmani, diacritized, no basmala prefix

    retasy = datasets.load_dataset(str(root / "retasy"), split="train")
    assert set(retasy.column_names) == RETASY_COLUMNS
    labels = Counter(retasy["final_label"])
    assert {"correct", "in_correct", "not_related_quran", "not_match_aya", None} <= set(labels)
    assert "" in retasy["Aya"]

    samples = load_samples(root / "benchmark")
    assert len(samples) >= 80
    spans = {len(s.expected_verses) for s in samples if s.category == "multi"}
    assert spans == {2, 3, 4, 5, 6}
    assert {s.category for s in samples} == {"short", "medium", "long", "multi", "negative"}
    negatives = [s for s in samples if s.category == "negative"]
    assert len(negatives) == 8 and all(s.expected_verses == () and s.source == "negative" for s in negatives)
    assert samples[-len(negatives):] == negatives  # after the verse clips, which stay as they were
    assert {(s.source, s.file.rsplit(".", 1)[1]) for s in samples} >= {
        ("everyayah", "wav"), ("everyayah", "mp3"), ("retasy", "mp3"), ("retasy", "wav"), ("user", "m4a")}
    said = [s for s in samples if s.id.endswith("_basmala")]
    skipped = {s.expected_verses[0] for s in samples if len(s.expected_verses) == 1 and not s.id.endswith("_basmala")}
    assert len(said) == 8 and all(s.expected_verses[0] in skipped for s in said)  # each also without it
    assert sum(s.id.startswith("leak_") for s in samples) == 3
    for sample in samples:
        assert load_audio(root / "benchmark" / sample.file).size > 16000 * 0.6
    check_sessions(root / "benchmark")


BENCHMARK_VOICES = {"m7", "f4", "Alicia", "Michael", "klatt2", "Edward"}


def check_sessions(corpus):
    """A dozen long-form sessions of one to three minutes, each of one benchmark voice, with every
    kind of non-recitation between verses, a crossing into the next surah, a verse said twice and
    one skipped; each file as long as its truth says."""
    sessions = load_sessions(corpus)
    assert len(sessions) == 12 and {s.speaker for s in sessions} == BENCHMARK_VOICES
    assert all(60 <= s.seconds <= 180 for s in sessions)
    assert {kind for s in sessions for kind, _, _ in s.non_recitation} == {"silence", "noise", "speech", "basmala"}
    pairs = [(a[:2], b[:2]) for s in sessions for a, b in zip(s.verses, s.verses[1:])]
    assert ((113, 5), (114, 1)) in pairs  # into the next surah, the basmala between (no verse)
    assert any(a == b for a, b in pairs)  # a verse said twice
    assert any(a[0] == b[0] and b[1] == a[1] + 2 for a, b in pairs)  # one skipped
    for session in sessions:
        audio = load_audio(corpus / session.file)
        assert abs(audio.size / 16000 - session.seconds) < 0.1, session.id


def test_the_shipped_demo_corpus_and_base_model_stay_small():
    size = sum(p.stat().st_size for p in (REPO / "demo").rglob("*") if p.is_file())
    # 30 MiB, and 3 more for the long-form sessions (16 minutes of MP3 at 24 kbit/s: 2.7 MiB)
    assert (REPO / "demo" / "base_model.nemo").is_file() and size <= 33 * 2**20


def test_the_shipped_demo_corpus():
    check_corpus(REPO / "demo")


@pytest.mark.slow
def test_the_generator_rebuilds_the_corpus(tmp_path):
    assert shutil.which("espeak-ng"), "make test installs espeak-ng (scripts/install_system_deps.sh)"
    out = tmp_path / "demo"
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_demo_corpus.py"), "--out", str(out)],
                   check=True, capture_output=True, timeout=600)
    check_corpus(out)
    for name in ("manifest.json", "sessions.json"):
        shipped = (REPO / "demo" / "benchmark" / name).read_text(encoding="utf-8")
        assert (out / "benchmark" / name).read_text(encoding="utf-8") == shipped
