"""The embedded demo corpus mirrors the real sources' schemas and carries the planted bad rows."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter

import datasets
import pytest

from conftest import REPO
from quranft.audio import load_audio
from quranft.corpus import load_samples
from quranft.quran_text import verse

RETASY_COLUMNS = {
    "audio", "Surah", "Aya", "duration_ms", "create_date", "golden", "final_label", "reciter_id",
    "reciter_country", "reciter_gender", "reciter_age", "reciter_qiraah", "judgments_num", "annotation_metadata",
}


def check_corpus(root):
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
    assert max(len(s.expected_verses) for s in samples) == 6
    suffixes = {s.file.rsplit(".", 1)[1] for s in samples}
    assert {"wav", "mp3", "m4a"} <= suffixes
    assert {s.category for s in samples} >= {"short", "multi"}
    assert sum(s.id.startswith("leak_") for s in samples) == 3
    for sample in samples:
        assert load_audio(root / "benchmark" / sample.file).size > 16000 * 0.6
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert size < 20 * 2**20


def test_the_shipped_demo_corpus():
    check_corpus(REPO / "demo")


@pytest.mark.slow
def test_the_generator_rebuilds_the_corpus(tmp_path):
    assert shutil.which("espeak-ng"), "make test installs espeak-ng (scripts/install_system_deps.sh)"
    out = tmp_path / "demo"
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_demo_corpus.py"), "--out", str(out)],
                   check=True, capture_output=True, timeout=600)
    check_corpus(out)
    shipped = (REPO / "demo" / "benchmark" / "manifest.json").read_text(encoding="utf-8")
    assert (out / "benchmark" / "manifest.json").read_text(encoding="utf-8") == shipped
