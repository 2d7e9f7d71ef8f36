"""The leakage guard's index: the benchmark corpus's clips fingerprinted (quranft.data.fingerprint),
so that the data stage can exclude their copies from training by content, not by name.

One name across the workflow: the rule `index_benchmark`, the command `index-benchmark`, this
module, and its output `results/data/benchmark_fingerprints.npz`."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from quranft.data.audio import SAMPLE_RATE, AudioDecodeError, load_audio
from quranft.data.benchmark_corpus import load_samples
from quranft.data.fingerprint import FingerprintIndex, fingerprint
from quranft.fileio import atomic_write_bytes


def build_index(corpus_dir: str | Path) -> tuple[FingerprintIndex, list[dict[str, Any]]]:
    """Fingerprint every decodable clip of the corpus; also return the clips that were skipped."""
    corpus_dir = Path(corpus_dir)
    index = FingerprintIndex()
    skipped = []
    for sample in load_samples(corpus_dir):
        try:
            samples = load_audio(corpus_dir / sample.file, SAMPLE_RATE)
        except AudioDecodeError as error:
            skipped.append({"id": sample.id, "file": sample.file, "error": str(error)})
            continue
        index.add(sample.id, fingerprint(samples, SAMPLE_RATE))
    return index, skipped


def write_index(index: FingerprintIndex, path: str | Path) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **index.to_arrays())
    atomic_write_bytes(path, buffer.getvalue())


def read_index(path: str | Path) -> FingerprintIndex:
    with np.load(path, allow_pickle=False) as arrays:
        return FingerprintIndex.from_arrays({key: arrays[key] for key in arrays.files})
