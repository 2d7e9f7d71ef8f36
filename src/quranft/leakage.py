"""Fingerprinting the benchmark corpus, so that the data stage can exclude its clips by content."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from quranft.audio import AudioDecodeError, load_audio
from quranft.corpus import load_samples
from quranft.fileio import atomic_write_bytes
from quranft.fingerprint import FingerprintIndex, fingerprint

RATE = 16000


def build_index(corpus_dir: str | Path) -> tuple[FingerprintIndex, list[dict[str, Any]]]:
    """Fingerprint every decodable clip of the corpus; also return the clips that were skipped."""
    corpus_dir = Path(corpus_dir)
    index = FingerprintIndex()
    skipped = []
    for sample in load_samples(corpus_dir):
        try:
            samples = load_audio(corpus_dir / sample.file, RATE)
        except AudioDecodeError as error:
            skipped.append({"id": sample.id, "file": sample.file, "error": str(error)})
            continue
        index.add(sample.id, fingerprint(samples, RATE))
    return index, skipped


def write_index(index: FingerprintIndex, path: str | Path) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **index.to_arrays())
    atomic_write_bytes(path, buffer.getvalue())


def read_index(path: str | Path) -> FingerprintIndex:
    with np.load(path, allow_pickle=False) as arrays:
        return FingerprintIndex.from_arrays({key: arrays[key] for key in arrays.files})
