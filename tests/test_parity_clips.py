"""The clips an export is compared with its .nemo on: a manifest, audio files, or by default the
demo's validation clips; never none."""

from __future__ import annotations

import json

import datasets
import pytest

from conftest import DEMO
from quranft.data.audio import load_audio
from quranft.deploy.export import export_model
from quranft.deploy.parity import NoParityClips, clips_manifest, parity_clips
from quranft.matching.threshold import validation_clips


def test_by_default_the_demos_validation_clips_with_their_text(tmp_path):
    manifest, what = clips_manifest(None, tmp_path)
    assert what == f"the demo's validation clips ({DEMO / 'quran_ayah_corpus'}, split validation)"
    clips = parity_clips(manifest, 100)
    assert len(clips) == 42 and clips[0][0] == "demo_validation_000"
    assert len(load_audio(clips[0][1])) == 71321  # 4.46 s at 16 kHz, the split's first row
    split = datasets.load_from_disk(str(DEMO / "quran_ayah_corpus"))["validation"].remove_columns("audio")
    assert [text for _, _, text in validation_clips(manifest, 100)] == split["text"]  # a threshold is chosen on them


def test_audio_files_or_a_manifest_as_given(tmp_path):
    files = [DEMO / "benchmark" / "user_103_003.m4a", DEMO / "benchmark" / "retasy_001_002.mp3"]
    manifest, what = clips_manifest(files, tmp_path)
    assert what == "2 audio files"
    assert parity_clips(manifest, 100) == [("user_103_003.m4a", str(files[0])), ("retasy_001_002.mp3", str(files[1]))]
    assert validation_clips(manifest, 100) == []  # no text: no threshold is chosen on them
    assert clips_manifest([manifest], tmp_path / "unused") == (manifest, f"the manifest {manifest}")


def test_clips_that_are_not_there_or_not_audio_are_refused_naming_them(tmp_path):
    with pytest.raises(NoParityClips, match="no such clip or manifest: .*missing.wav"):
        clips_manifest([tmp_path / "missing.wav"], tmp_path)
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    with pytest.raises(NoParityClips, match="one manifest \\(.jsonl\\) or audio files .*got .*notes.txt"):
        clips_manifest([tmp_path / "notes.txt"], tmp_path)


def test_an_export_never_reports_parity_on_no_clip(tmp_path):
    with pytest.raises(NoParityClips, match="no clips to compare the export with the .nemo on"):
        export_model(DEMO / "base_model.nemo", tmp_path / "export", ["fp32"], None)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(NoParityClips, match="empty.jsonl: no clip to compare the export of .* \\(the manifest has no rows\\)"):
        export_model(DEMO / "base_model.nemo", tmp_path / "export", ["fp32"], empty)
    assert not (tmp_path / "export").exists()
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"id": "gone", "audio_filepath": "gone.wav"}) + "\n", encoding="utf-8")
    with pytest.raises(NoParityClips, match="1 clips given, and the .nemo failed on every one \\(gone\\)"):
        export_model(DEMO / "base_model.nemo", tmp_path / "export", ["fp32"], broken)
