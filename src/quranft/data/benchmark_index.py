"""The leakage guard's index: the benchmark corpus's clips and long-form sessions fingerprinted
(quranft.data.fingerprint), so that the data stage can exclude their copies from training by
content, not by name.

One name across the workflow: the rule `index_benchmark`, the command `index-benchmark`, this
module, and its output `results/data/benchmark_fingerprints.npz`."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from quranft.data.audio import SAMPLE_RATE, AudioDecodeError, load_audio
from quranft.data.benchmark_corpus import load_samples
from quranft.data.fingerprint import FingerprintIndex, fingerprint
from quranft.data.sessions import load_sessions
from quranft.fileio import atomic_write_bytes, read_jsonl


def benchmark_speakers(corpus_dir: str | Path) -> list[str]:
    """The speakers of the corpus's clips (their manifest's `speaker`, which a built corpus records)
    and of its sessions, sorted; empty when none is named."""
    clips = {str(s.raw["speaker"]) for s in load_samples(corpus_dir) if s.raw.get("speaker") is not None}
    return sorted(clips | {s.speaker for s in load_sessions(corpus_dir) if s.speaker is not None})


ASR_PREFIX = "asr_benchmark:"  # an ASR test-set clip's id in the index
SESSION_PREFIX = "session:"  # a long-form session's id in the index


def build_index(corpus_dir: str | Path, asr_set: str | Path | None = None) -> tuple[FingerprintIndex, list[dict]]:
    """Fingerprint every decodable clip of the corpus, its long-form sessions (sessions.json; ids
    session:<id>), and the prepared ASR test set's clips (its manifest.jsonl; ids asr_benchmark:<id>)
    when given; also return the clips that were skipped."""
    corpus_dir = Path(corpus_dir)
    clips = [(sample.id, corpus_dir / sample.file, sample.file) for sample in load_samples(corpus_dir)]
    clips += [(f"{SESSION_PREFIX}{session.id}", corpus_dir / session.file, session.file)
              for session in load_sessions(corpus_dir)]
    if asr_set is not None:
        clips += [(f"{ASR_PREFIX}{row['id']}", Path(asr_set) / row["audio_filepath"], row["audio_filepath"])
                  for row in read_jsonl(Path(asr_set) / "manifest.jsonl")]
    index = FingerprintIndex()
    skipped = []
    for clip_id, path, file in clips:
        try:
            samples = load_audio(path, SAMPLE_RATE)
        except AudioDecodeError as error:
            skipped.append({"id": clip_id, "file": file, "error": str(error)})
            continue
        index.add(clip_id, fingerprint(samples, SAMPLE_RATE))
    return index, skipped


def write_index(index: FingerprintIndex, path: str | Path, speakers: list[str] = ()) -> None:
    """The fingerprints, and the benchmark's speakers beside them (the data stage holds them out)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **index.to_arrays(), speakers=np.array(list(speakers), dtype=str))
    atomic_write_bytes(path, buffer.getvalue())


def read_index(path: str | Path) -> FingerprintIndex:
    with np.load(path, allow_pickle=False) as arrays:
        return FingerprintIndex.from_arrays({key: arrays[key] for key in arrays.files if key != "speakers"})


def read_speakers(path: str | Path) -> set[str]:
    """The benchmark's speakers written beside its fingerprints."""
    with np.load(path, allow_pickle=False) as arrays:
        return set(arrays["speakers"].tolist()) if "speakers" in arrays.files else set()
