"""No verse for what is not recitation: the voice-activity detector, the confidence of a prediction,
the threshold chosen on validation clips, and negatives scored as false accepts."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from conftest import DEMO, REPO
from quranft.data.audio import load_audio
from quranft.matching.ctc_matcher import CTCMatcher
from quranft.matching.rejection import Rejection, choose_threshold, prediction_confidence
from quranft.matching.scoring import score_rows
from quranft.matching.text_matcher import TextMatcher
from quranft.matching.verse_index import default_index
from quranft.data.vad import FRAME, RATE, VoiceActivity, intervals_of, speech_stretches
from quranft.quran import tanzil
from quranft.quran.tokenizer import SentencePieceTokenizer
from test_segments import UNLIKELY, tokenizer

STEP = FRAME / RATE  # 32 ms


@pytest.fixture(scope="module")
def vad() -> VoiceActivity:
    return VoiceActivity()


def test_the_detector_hears_no_speech_in_silence_or_noise(vad):
    rng = np.random.default_rng(0)
    assert vad.speech(np.zeros(5 * RATE, np.float32)) == []
    assert vad.speech((0.2 * rng.standard_normal(5 * RATE)).astype(np.float32)) == []


def test_the_detector_hears_a_recitation_where_it_is(vad):
    """A demo clip (3.97 s) between 2 s of silence on each side: one interval, inside the clip's
    own span, covering most of it."""
    clip = load_audio(DEMO / "benchmark" / "everyayah_001_001.mp3")
    audio = np.concatenate([np.zeros(2 * RATE, np.float32), clip, np.zeros(2 * RATE, np.float32)])
    (start, end), = vad.speech(audio)
    assert 2.0 <= start < 2.5 and 5.0 < end <= 2.0 + len(clip) / RATE + 0.1


def test_speech_intervals_follow_silero_rules_on_known_probabilities():
    """Start at the first frame at or above 0.5; end after 0.1 s (4 frames) under 0.35; a dip that
    short is bridged; a burst under 0.25 s is dropped; 30 ms of padding."""
    probs = np.array([0.1] * 10 + [0.9] * 20 + [0.2] * 2 + [0.9] * 10 + [0.1] * 20 + [0.9] * 5 + [0.1] * 10)
    duration = len(probs) * STEP
    assert intervals_of(probs, duration) == [(round(10 * STEP - 0.03, 4), round(42 * STEP + 0.03, 4))]
    assert intervals_of(np.full(40, 0.9), 40 * STEP) == [(0.0, round(40 * STEP, 4))]


def test_the_model_hears_each_stretch_of_speech_widened_and_joined_on_frame_boundaries():
    """0.3 s of margin on each side, intervals closer than 0.5 s joined, each start on a frame
    boundary (1280 samples), the ends within the recording."""
    stretches = speech_stretches([(1.0, 2.0), (2.4, 3.0), (5.0, 9.9)], 10 * RATE, frame_samples=1280)
    assert stretches == [(10240, 52800), (74240, 160000)]  # 0.64-3.3 s and 4.64-10 s (starts rounded down)
    assert all(start % 1280 == 0 for start, _ in stretches)
    assert speech_stretches([], 10 * RATE, 1280) == []


def test_the_threshold_is_the_middle_of_the_widest_best_separating_stretch():
    chosen = choose_threshold([0.5, 0.8, 0.9, 0.95], [0.1, 0.3, 0.6])
    assert (chosen["threshold"], chosen["positives_kept"], chosen["negatives_refused"]) == (0.7, 0.75, 1.0)
    assert choose_threshold([1.0, 1.0, 0.9], [0.0, 0.1])["threshold"] == 0.5
    assert choose_threshold([], [0.2])["threshold"] == Rejection().threshold


def spelled(verses, frames_between: int = 6) -> np.ndarray:
    """Log-probs that spell the verses' simple text (a frame per token, a blank after each)."""
    blank = tokenizer().vocab_size
    labels = [blank] * frames_between
    for surah, ayah in verses:
        for token in tokenizer().text_to_ids(tanzil.verse(surah, ayah, "simple")):
            labels += [token, blank]
        labels += [blank] * frames_between
    log_probs = np.full((len(labels), blank + 1), UNLIKELY, np.float32)
    log_probs[np.arange(len(labels)), labels] = 0.0
    return log_probs


def matcher() -> CTCMatcher:
    return CTCMatcher(tokenizer(), blank=tokenizer().vocab_size)


def test_what_no_verse_is_predicted_for_is_counted_and_no_threshold_is_chosen_by_it(vad):
    """A model that names no verse (an untrained one) gives the threshold nothing to choose by: each
    clip, heard forwards and backwards, is counted as nothing predicted, the synthetic silence and
    noise as refused by the detector, and the default threshold stands."""
    from quranft.matching.rejection import DEFAULT_THRESHOLD
    from quranft.matching.threshold import choose_rejection

    clips = [(name, DEMO / "benchmark" / f"{name}.mp3", tanzil.verse(surah, 1))
             for name, surah in (("everyayah_001_001", 1), ("everyayah_103_001", 103))]
    rejection = choose_rejection(lambda audio: ((), None), clips, default_index(), TextMatcher(), vad)
    assert rejection.threshold == DEFAULT_THRESHOLD
    assert {key: rejection.chosen_on[key] for key in ("clips", "nothing_predicted", "refused_by_vad",
                                                       "predicted_wrong", "failed", "positives", "negatives")} == {
        "clips": 2, "nothing_predicted": 4, "refused_by_vad": 3, "predicted_wrong": 0, "failed": 0,
        "positives": 0, "negatives": 0}


def test_a_prediction_spelled_by_the_log_probs_is_confident_and_another_is_not():
    log_probs = spelled([(112, 1)])
    assert prediction_confidence(log_probs, [(112, 1)], matcher()) == 1.0
    assert prediction_confidence(log_probs, [(2, 255)], matcher()) < 0.3
    assert prediction_confidence(None, [(112, 1)], matcher()) is None
    assert prediction_confidence(log_probs, [], matcher()) is None


def test_negatives_are_false_accepts_apart_from_the_protocols_means():
    """Two recitations and two negatives: the protocol's means are the recitations' alone; a
    negative with speech and a confident verse is a false accept; one without speech is refused;
    a recitation of little confidence is refused and scores 0."""
    tok = tokenizer()
    noise = np.random.default_rng(3).normal(size=(40, tok.vocab_size + 1)).astype(np.float32)
    noise -= np.log(np.exp(noise).sum(axis=1, keepdims=True))
    log_probs = {"a": spelled([(112, 1)]), "b": noise, "n1": spelled([(112, 2)]), "n2": spelled([(112, 3)])}
    text = lambda verse: tanzil.verse(*verse, "simple")  # noqa: E731
    rows = [
        {"id": "a", "category": "short", "expected": [[112, 1]], "transcript": text((112, 1)), "speech_seconds": 2.0},
        {"id": "b", "category": "short", "expected": [[112, 4]], "transcript": text((112, 4)), "speech_seconds": 2.0},
        {"id": "n1", "category": "negative", "expected": [], "transcript": text((112, 2)), "speech_seconds": 3.0},
        {"id": "n2", "category": "negative", "expected": [], "transcript": text((112, 3)), "speech_seconds": 0.1},
    ]
    summary = score_rows(rows, ("ctc",), default_index(), TextMatcher(), matcher(), log_probs,
                         Rejection(threshold=0.6))["ctc"]
    assert (summary["samples"], summary["sequence_accuracy"], summary["recall"]) == (2, 0.5, 0.5)
    assert list(summary["per_category"]) == ["short"]
    assert summary["negatives"] == {"samples": 2, "false_accepts": 1, "false_accept_rate": 0.5, "accepted": ["n1"]}
    judged = {row["id"]: row["matchers"]["ctc"] for row in rows}
    assert judged["a"]["predicted"] == [[112, 1]] and judged["a"]["refused"] is None
    assert judged["b"]["predicted"] == [] and judged["b"]["refused"] == "low confidence"
    assert len(judged["b"]["refused_verses"]) == 1  # whatever the matcher made of noise, refused
    assert judged["n2"]["refused"] == "no speech" and judged["n2"]["false_accept"] is False
    assert judged["n1"]["false_accept"] is True


def test_the_segmenter_path_with_the_detector_imports_no_torch(tmp_path):
    """The detector runs on onnxruntime alone: with torch unimportable it still hears speech."""
    code = (
        "import sys; sys.modules['torch'] = None; sys.path.insert(0, 'src')\n"
        "import numpy as np\n"
        "from quranft.data.audio import load_audio\n"
        "from quranft.data.vad import VoiceActivity\n"
        "print(len(VoiceActivity().speech(load_audio('demo/benchmark/everyayah_001_001.mp3'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"


def test_the_tokenizer_fixture_is_the_demo_models():
    assert isinstance(tokenizer(), SentencePieceTokenizer)
