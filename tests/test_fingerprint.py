"""The leakage guard's fingerprints: same audio matches across containers and cuts, other audio does not."""

from __future__ import annotations

import numpy as np
import soxr

from conftest import encoded, synth
from quranft.data.audio import load_audio
from quranft.data.benchmark_index import read_index, write_index
from quranft.data.fingerprint import FingerprintIndex, fingerprint

RATE = 16000


def index_of(**clips) -> FingerprintIndex:
    index = FingerprintIndex()
    for clip_id, samples in clips.items():
        index.add(clip_id, fingerprint(samples, RATE))
    return index


def test_a_reencoded_copy_matches_with_few_bit_errors():
    clip = synth(4.0, seed=1)
    index = index_of(bench=clip, other=synth(4.0, seed=2))
    copy = load_audio(encoded(soxr.resample(clip * 0.6, RATE, 44100), 44100, "MP3"))
    match = index.match(fingerprint(copy, RATE), max_bit_error_rate=0.2)
    assert match is not None and match[0] == "bench" and match[1] < 0.15


def test_a_verse_cut_from_a_multi_verse_clip_matches_at_any_offset():
    verses = [synth(3.0, seed=s) for s in (3, 4, 5)]
    gap = np.zeros(RATE // 2, np.float32)
    multi = np.concatenate([verses[0], gap, verses[1], gap, verses[2]])
    index = index_of(multi=multi)
    for verse in verses:
        match = index.match(fingerprint(verse, RATE), max_bit_error_rate=0.2)
        assert match is not None and match[0] == "multi"
    # and the other way round: a training row holding more than the benchmark clip
    longer = np.concatenate([synth(2.0, seed=9), verses[1], synth(2.0, seed=10)])
    assert index_of(single=verses[1]).match(fingerprint(longer, RATE), 0.2)[0] == "single"


def test_different_audio_does_not_match():
    index = index_of(**{f"clip{s}": synth(3.0, seed=s) for s in range(10, 20)})
    for seed in range(30, 40):
        assert index.match(fingerprint(synth(3.0, seed=seed), RATE), max_bit_error_rate=0.2) is None


def test_silence_alone_matches_nothing():
    index = index_of(clip=np.concatenate([np.zeros(RATE), synth(2.0, seed=7)]))
    assert index.match(fingerprint(np.zeros(3 * RATE, np.float32), RATE), 0.2) is None


def test_index_survives_a_round_trip_through_its_file(tmp_path):
    clips = {f"c{s}": synth(2.5, seed=s) for s in range(3)}
    write_index(index_of(**clips), tmp_path / "index.npz")
    loaded = read_index(tmp_path / "index.npz")
    assert loaded.ids == list(clips)
    assert loaded.match(fingerprint(clips["c2"], RATE), 0.2)[0] == "c2"
