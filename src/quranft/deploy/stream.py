"""`identify --stream`: the verses of a recitation as it arrives, each printed once it is confirmed
and never taken back (models.streaming), as the app follows a reciter.

The audio is a file, read in chunks at real time (or as fast as it goes with `realtime` off), or
raw 16 kHz mono 16-bit little-endian PCM on standard input ("-"), a microphone piped in, e.g.
`arecord -f S16_LE -r 16000 -c 1 | python -m quranft identify --stream --model M -`. Each verse is
a line when it is emitted: the seconds of audio received then, its start-end, the verse and its
surah, its confidence (`--json`: one object a verse). With an .onnx, nothing of NeMo, Lightning or
torch is imported.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, TextIO

import numpy as np

from quranft.data.audio import SAMPLE_RATE, load_audio
from quranft.data.vad import VoiceActivity
from quranft.deploy.identify import threshold_for
from quranft.matching.segments import VerseSegmenter
from quranft.models.loading import load_for_ctc
from quranft.models.streaming import DEFAULT_CHUNK_SECONDS, Emitted, VerseStream, stream_chunks
from quranft.models.windowed import Windowing
from quranft.quran.references import surah_labels, verses_label


def pcm_chunks(source: BinaryIO, chunk_seconds: float) -> Iterator[np.ndarray]:
    """16-bit little-endian mono PCM from a stream, in chunks of `chunk_seconds` (the last shorter)."""
    size = 2 * max(1, int(round(chunk_seconds * SAMPLE_RATE)))
    pending = b""
    while True:
        data = source.read(size - len(pending))
        if not data:
            break
        pending += data
        if len(pending) >= size:
            yield np.frombuffer(pending[:size], "<i2").astype(np.float32) / 32768.0
            pending = pending[size:]
    whole = len(pending) // 2 * 2
    if whole:
        yield np.frombuffer(pending[:whole], "<i2").astype(np.float32) / 32768.0


def file_chunks(path: str | Path, chunk_seconds: float, realtime: bool) -> Iterator[np.ndarray]:
    """A file's audio in chunks, each when it would have arrived (at real time) or at once."""
    started = time.monotonic()
    received = 0.0
    for chunk in stream_chunks(load_audio(path), SAMPLE_RATE, chunk_seconds):
        received += len(chunk) / SAMPLE_RATE
        if realtime:
            time.sleep(max(0.0, started + received - time.monotonic()))
        yield chunk


def verse_line(verse: Emitted, json_lines: bool) -> str:
    label, name = verses_label([(verse.surah, verse.ayah)]), surah_labels([(verse.surah, verse.ayah)])[0]
    if json_lines:
        return json.dumps(verse.as_dict() | {"label": label, "surah_name": name}, ensure_ascii=False)
    return (f"{verse.at:.2f}\t{verse.start:.2f}-{verse.end:.2f}\t{label} {name}\tconfidence "
            f"{verse.confidence:.2f}")


def run_stream(model_path: str | Path, source: str, threads: int, json_lines: bool, out: TextIO,
               chunk_seconds: float = DEFAULT_CHUNK_SECONDS, realtime: bool = True,
               windowing: Windowing = Windowing(), min_confidence: float | None = None) -> int:
    """Print each verse of `source` (a file, or "-" for PCM on standard input) once it is emitted."""
    model = load_for_ctc(model_path, threads)
    threshold = min_confidence if min_confidence is not None else threshold_for(model_path, model)[0]
    segmenter = VerseSegmenter(model.tokenizer, model.blank, frame_seconds=model.frame_seconds,
                               min_confidence=threshold)
    stream = VerseStream(model, segmenter.find, VoiceActivity(threads=max(1, threads)), windowing=windowing)
    chunks = pcm_chunks(sys.stdin.buffer, chunk_seconds) if source == "-" else file_chunks(source, chunk_seconds,
                                                                                          realtime)
    for chunk in chunks:
        for verse in stream.feed(chunk):
            print(verse_line(verse, json_lines), file=out, flush=True)
    for verse in stream.finish():
        print(verse_line(verse, json_lines), file=out, flush=True)
    return 0
