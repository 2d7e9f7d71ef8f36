"""One bad sample never stops a benchmark: every kind of failure scores 0, is recorded and counted.

Real failures where they can be made (a missing file, bytes that are not audio, a clip of zero
samples); injected ones where they cannot on this machine (out of memory, a matcher that raises).
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import DEMO
from quranft.data.audio import load_audio
from quranft.evaluation.benchmark import run_benchmark
from quranft.matching.ctc_matcher import CTCMatcher
from quranft.models import nemo_models
from quranft.models.transcribe import failure_kind, transcribe_files, transcribe_samples, use_ctc_greedy

GOOD = ["everyayah_112_002", "retasy_113_003", "user_103_002", "multi_112_001_004"]
OUT_OF_MEMORY = "everyayah_114_001"  # this clip's forward pass raises out-of-memory, alone or in a batch
MATCHER_FAILS = "retasy_113_003"  # the ctc matcher raises on this clip's log-probabilities


def empty_wav() -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(0, np.float32), 16000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """An empty clip first and the out-of-memory clip second (the warm-up meets both), good clips,
    a missing file and one that is not audio."""
    folder = tmp_path_factory.mktemp("failures")
    demo = {s["id"]: s for s in json.loads((DEMO / "benchmark" / "manifest.json").read_text(encoding="utf-8"))["samples"]}
    (folder / "empty.wav").write_bytes(empty_wav())
    (folder / "broken.wav").write_bytes(b"RIFF....WAVEnot audio at all")
    samples = [{"id": "empty", "file": "empty.wav", "surah": 1, "ayah": 1, "category": "short", "source": "user"},
               demo[OUT_OF_MEMORY], *(demo[i] for i in GOOD),
               {"id": "gone", "file": "gone.wav", "surah": 1, "ayah": 1, "category": "short", "source": "user"},
               {"id": "broken", "file": "broken.wav", "surah": 1, "ayah": 2, "category": "short", "source": "user"}]
    for sample in samples[1:-2]:
        shutil.copy(DEMO / "benchmark" / sample["file"], folder / sample["file"])
    (folder / "manifest.json").write_text(json.dumps({"samples": samples}, ensure_ascii=False), encoding="utf-8")
    return folder


def samples_of(corpus: Path, sample_id: str) -> int:
    manifest = json.loads((corpus / "manifest.json").read_text(encoding="utf-8"))
    return len(load_audio(corpus / next(s["file"] for s in manifest["samples"] if s["id"] == sample_id)))


@pytest.fixture
def out_of_memory(monkeypatch, corpus):
    """Restored models whose forward pass raises CUDA's out-of-memory error for any batch of more
    than one clip and for the OUT_OF_MEMORY clip (as a clip too long for the memory left would)."""
    too_long = samples_of(corpus, OUT_OF_MEMORY)
    restore = nemo_models.restore

    def restore_short_of_memory(*args, **kwargs):
        model = restore(*args, **kwargs)
        forward = model.forward

        def forward_short_of_memory(input_signal, input_signal_length):
            if input_signal.shape[0] > 1 or int(input_signal_length.max()) == too_long:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
            return forward(input_signal=input_signal, input_signal_length=input_signal_length)

        model.forward = forward_short_of_memory
        return model

    monkeypatch.setattr(nemo_models, "restore", restore_short_of_memory)


@pytest.fixture
def failing_matcher(monkeypatch, corpus, tiny_base):
    """The ctc matcher raises on the MATCHER_FAILS clip (known by its number of frames)."""
    model = nemo_models.restore(tiny_base, map_location="cpu")
    use_ctc_greedy(model)
    frames = {i: len(transcribe_samples(model, [load_audio(corpus / f"{i}.{ext}")], keep_log_probs=True)[0].log_probs)
              for i, ext in zip(GOOD, ("wav", "mp3", "m4a", "wav"))}
    assert list(frames.values()).count(frames[MATCHER_FAILS]) == 1, frames  # the trigger picks one clip
    match = CTCMatcher.match

    def match_or_fail(self, transcript, log_probs, *args, **kwargs):
        if log_probs is not None and len(log_probs) == frames[MATCHER_FAILS]:
            raise RuntimeError("matcher bug")
        return match(self, transcript, log_probs, *args, **kwargs)

    monkeypatch.setattr(CTCMatcher, "match", match_or_fail)


@pytest.mark.slow
def test_every_kind_of_failure_scores_zero_and_the_run_goes_on(corpus, tiny_base, out_of_memory, failing_matcher,
                                                               tmp_path):
    result = run_benchmark(tiny_base, corpus, tmp_path / "benchmark.json", "base", batch_size=8)
    rows = {row["id"]: row for row in result["rows"]}
    assert {i: rows[i]["error_kind"] for i in ("empty", OUT_OF_MEMORY, "gone", "broken")} == {
        "empty": "empty_audio", OUT_OF_MEMORY: "out_of_memory", "gone": "decode", "broken": "decode"}
    assert "gone.wav" in rows["gone"]["error"] and "out of memory" in rows[OUT_OF_MEMORY]["error"]
    for sample in ("empty", OUT_OF_MEMORY, "gone", "broken"):
        assert rows[sample]["transcript"] is None
        for matcher in ("text", "ctc"):
            scores = rows[sample]["matchers"][matcher]
            assert (scores["recall"], scores["precision"], scores["sequence_accuracy"]) == (0.0, 0.0, 0.0)
    # the matcher's failure costs that clip its ctc scores only: its transcript and text scores stand
    failed = rows[MATCHER_FAILS]
    assert failed["error"] is None and isinstance(failed["transcript"], str) and failed["latency"] is None
    assert failed["matchers"]["ctc"]["error_kind"] == "matcher" and "matcher bug" in failed["matchers"]["ctc"]["error"]
    assert failed["matchers"]["ctc"]["sequence_accuracy"] == 0.0 and "predicted" in failed["matchers"]["text"]
    for sample in set(GOOD) - {MATCHER_FAILS}:
        assert rows[sample]["error"] is None and rows[sample]["latency"] > 0
        assert "predicted" in rows[sample]["matchers"]["ctc"]
    assert result["summary"]["ctc"]["errors"] == {"decode": 2, "empty_audio": 1, "matcher": 1, "out_of_memory": 1}
    assert result["summary"]["text"]["errors"] == {"decode": 2, "empty_audio": 1, "out_of_memory": 1}
    assert result["summary"]["ctc"]["samples"] == 8  # means over all samples, failed ones included
    # the warm-up met the empty clip and the out-of-memory one, and warmed up on the next
    warm_up = result["latency"]["warm_up"]
    assert [(f["id"], f["error_kind"]) for f in warm_up["failed"]] == [("empty", "empty_audio"),
                                                                         (OUT_OF_MEMORY, "out_of_memory")]
    assert warm_up["sample"] == GOOD[0]
    assert result["latency"]["samples"] == len(GOOD) - 1
    # every batch ran out of memory: each clip was transcribed alone instead, none lost
    batch = result["latency"]["batch"]
    assert batch["clips"] == len(GOOD) and batch["failed"] == 0
    assert json.loads((tmp_path / "benchmark.json").read_text(encoding="utf-8"))["summary"] == result["summary"]
    # the RNNT head: a clip that failed fails it too; the ctc matcher's failure is not the head's
    rnnt = {row["id"]: row for row in result["decoders"]["rnnt"]["rows"]}
    assert {i: rnnt[i]["error_kind"] for i in ("empty", OUT_OF_MEMORY, "gone", "broken")} == {
        "empty": "empty_audio", OUT_OF_MEMORY: "out_of_memory", "gone": "decode", "broken": "decode"}
    assert rnnt[MATCHER_FAILS]["error"] is None and "predicted" in rnnt[MATCHER_FAILS]["matchers"]["text"]
    assert result["decoders"]["rnnt"]["summary"]["text"]["errors"] == {"decode": 2, "empty_audio": 1,
                                                                       "out_of_memory": 1}


@pytest.mark.slow
def test_a_failed_batch_is_transcribed_clip_by_clip(corpus, tiny_base, out_of_memory):
    model = nemo_models.restore(tiny_base, map_location="cpu")
    use_ctc_greedy(model)
    names = ["everyayah_112_002.wav", "everyayah_114_001.wav", "retasy_113_003.mp3", "empty.wav", "broken.wav",
             "multi_112_001_004.wav"]
    transcripts = transcribe_files(model, [str(corpus / name) for name in names], batch_size=8)
    kinds = [t.error_kind for t in transcripts]
    assert kinds == [None, "out_of_memory", None, "empty_audio", "decode", None]
    alone = {name: transcribe_files(model, [str(corpus / name)])[0].text for name in names if name != names[1]}
    for name, transcript in zip(names, transcripts):
        if transcript.error is None:
            assert transcript.text == alone[name]
        else:
            assert transcript.text == "" and transcript.log_probs is None


@pytest.mark.slow
def test_a_failed_rnnt_batch_is_decoded_clip_by_clip_and_a_failed_clip_keeps_its_ctc_transcript(corpus, tiny_base,
                                                                                               monkeypatch):
    from quranft.models.transcribe import use_rnnt_greedy

    model = nemo_models.restore(tiny_base, map_location="cpu")
    use_rnnt_greedy(model)
    use_ctc_greedy(model)
    paths = [str(corpus / name) for name in ("everyayah_112_002.wav", "retasy_113_003.mp3", "multi_112_001_004.wav",
                                             "broken.wav")]
    alone = [transcribe_files(model, [path], rnnt=True)[0] for path in paths]
    frames = len(transcribe_files(model, [paths[2]], keep_log_probs=True)[0].log_probs)
    decode = model.decoding.rnnt_decoder_predictions_tensor

    def short_of_memory(encoder_output, encoded_lengths, **kwargs):  # any batch, and the third clip alone
        if encoder_output.shape[0] > 1 or int(encoded_lengths.max()) == frames:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return decode(encoder_output=encoder_output, encoded_lengths=encoded_lengths, **kwargs)

    monkeypatch.setattr(model.decoding, "rnnt_decoder_predictions_tensor", short_of_memory)
    transcripts = transcribe_files(model, paths, batch_size=8, rnnt=True)
    assert [t.text for t in transcripts] == [t.text for t in alone]  # the CTC head's, untouched
    assert [t.rnnt.text for t in transcripts[:2]] == [t.rnnt.text for t in alone[:2]] and alone[0].rnnt.text
    assert (transcripts[2].error, transcripts[2].rnnt.error_kind, transcripts[2].rnnt.text) == (None, "out_of_memory",
                                                                                                "")
    assert transcripts[3].error_kind == "decode" and transcripts[3].rnnt is None
    assert all(t.encoded is None for t in transcripts)  # the encoder outputs are let go


@pytest.mark.parametrize("error, kind", [
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "out_of_memory"),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried "
                  "to allocate 123456789 bytes"), "out_of_memory"),
    (RuntimeError("CUDA error: out of memory"), "out_of_memory"),
    (IndexError("index 0 is out of bounds for dimension 1 with size 0"), "transcription"),
])
def test_failures_are_told_apart_by_kind(error, kind):
    assert failure_kind(error) == kind
