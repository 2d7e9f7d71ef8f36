"""The benchmark corpus of the protocol: a folder with manifest.json and the audio it names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quranft.errors import QuranftError
from quranft.fileio import read_json_list

CORPUS_MANIFEST = "manifest.json"


class CorpusError(QuranftError, ValueError):
    """A benchmark manifest that does not follow the protocol; the message names the sample."""


@dataclass(frozen=True)
class Sample:
    id: str
    file: str
    expected_verses: tuple[tuple[int, int], ...]
    category: str
    source: str
    raw: dict[str, Any]


def _expected(entry: dict[str, Any], where: str) -> tuple[tuple[int, int], ...]:
    if "expected_verses" in entry:
        verses = entry["expected_verses"]
        if not isinstance(verses, list):
            raise CorpusError(f"{where}: expected_verses must be a list")
        try:
            return tuple((int(v["surah"]), int(v["ayah"])) for v in verses)
        except (KeyError, TypeError, ValueError):
            raise CorpusError(f"{where}: every expected verse needs integer surah and ayah") from None
    try:
        return ((int(entry["surah"]), int(entry["ayah"])),)
    except (KeyError, TypeError, ValueError):
        raise CorpusError(f"{where}: needs expected_verses, or integer surah and ayah") from None


def load_samples(corpus_dir: str | Path) -> list[Sample]:
    """Read and check the corpus manifest; audio files are not opened here."""
    path = Path(corpus_dir) / CORPUS_MANIFEST
    try:
        entries = read_json_list(path, "samples", CorpusError)
    except FileNotFoundError:
        raise CorpusError(f"{path}: benchmark manifest not found") from None
    samples, seen = [], set()
    for number, entry in enumerate(entries):
        where = f"{path} sample {number}"
        if not isinstance(entry, dict) or not entry.get("id") or not entry.get("file"):
            raise CorpusError(f"{where}: every sample needs an 'id' and a 'file'")
        where = f"{path} sample {entry['id']!r}"
        if entry["id"] in seen:
            raise CorpusError(f"{where}: duplicate id")
        seen.add(entry["id"])
        samples.append(
            Sample(
                id=str(entry["id"]),
                file=str(entry["file"]),
                expected_verses=_expected(entry, where),
                category=str(entry.get("category", "")),
                source=str(entry.get("source", "")),
                raw=entry,
            )
        )
    return samples


def audio_files(corpus_dir: str | Path) -> list[str]:
    """Paths of the audio files the manifest names that exist (missing ones score 0 later)."""
    corpus_dir = Path(corpus_dir)
    return [
        str(corpus_dir / s.file) for s in load_samples(corpus_dir) if (corpus_dir / s.file).is_file()
    ]


BUILD_REPORT = "build_report.json"  # what build-corpus writes beside the manifest of a corpus it built


def check_build_target(corpus_dir: str | Path) -> None:
    """With benchmark.build set, the workflow builds benchmark.corpus, and Snakemake deletes a
    job's outputs before running it: refuse a folder that holds a corpus the builder did not make
    (a finished or shipped corpus would lose its manifest)."""
    corpus_dir = Path(corpus_dir)
    if (corpus_dir / CORPUS_MANIFEST).exists() and not (corpus_dir / BUILD_REPORT).exists():
        raise CorpusError(
            f"config key 'benchmark.corpus' ({corpus_dir}) holds a corpus that benchmark.build did not make "
            f"(no {BUILD_REPORT}), and building would replace it: set 'benchmark.build: null' to benchmark it as "
            "it is, or point 'benchmark.corpus' at a new folder for the built corpus")


def synthetic_corpus_warning(corpus_dir: str | Path, base_model: str, workflow_dir: str | Path) -> str | None:
    """A warning when the synthetic demo corpus (espeak-ng voices) would judge a real base model,
    whose figures on it would say nothing about real recitation; None otherwise."""
    demo = Path(workflow_dir) / "demo"
    if Path(corpus_dir).resolve() != (demo / "benchmark").resolve():
        return None
    if Path(base_model).resolve() == (demo / "base_model.nemo").resolve():
        return None
    return (f"WARNING: benchmark.corpus is the demo's synthetic corpus ({corpus_dir}: espeak-ng voices), but "
            f"the base model is {base_model}, not the demo's: its verse-identification figures would describe "
            "synthetic speech, not recitation. Build a real corpus with benchmark.build (config/README.md, "
            "\"Building a real benchmark corpus\") or point benchmark.corpus at a corpus of real recordings.")
