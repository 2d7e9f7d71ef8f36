"""Checkpoint averaging on real checkpoints of a tiny NeMo model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import soundfile
import torch
import yaml

from conftest import DEMO
from quranft.training.average import AveragingError, average_checkpoints, average_trial, guard_rows, load_state_dict
from quranft.training.trials import load_trial

pytestmark = pytest.mark.slow

OVERFIT_TRIAL = {
    "trigger": "overfit a handful of clips, so that the model transcribes them",
    "batch_size": 8, "grad_accum": 1, "max_steps": 150, "lr": 3.0e-3, "warmup_steps": 10, "min_lr": 1.0e-3,
    "val_interval": 50, "freeze_encoder_layers": 0, "freeze_rnnt_decoder": True, "ctc_only": True,
    "spec_freq_masks": 0, "spec_time_masks": 0, "include_retasy": False,
    "max_train_samples": 8, "max_val_samples": 8, "save_top_k": 3, "average_top_k": 3,
    "text_option": "map_missing",
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_base, demo_data_stage) -> Path:
    """A tiny model trained on 8 clips and validated on the same 8, so that its WER is well below 1."""
    from quranft.training.train import train_trial

    work = tmp_path_factory.mktemp("overfit")
    (work / "trials").mkdir()
    (work / "trials" / "o.yaml").write_text(yaml.safe_dump(OVERFIT_TRIAL), encoding="utf-8")
    sources = {name: demo_data_stage / "results" / "data" / name for name in ("quran_ayah_corpus", "retasy")}
    out = work / "o"
    train_trial(load_trial(work / "trials", "o"), tiny_base, sources, out)
    # validate on the training clips: the guard then has a model that really transcribes
    (out / "data" / "validation.jsonl").write_text((out / "data" / "train.jsonl").read_text(encoding="utf-8"),
                                                   encoding="utf-8")
    return out


def hand_made(path: Path, state: dict[str, torch.Tensor]) -> Path:
    torch.save({"state_dict": state, "global_step": 1}, path)
    return path


def test_average_is_the_exact_mean_and_integer_buffers_come_from_the_best(tmp_path, tiny_base):
    from quranft.models import nemo_models

    reference = nemo_models.restore(tiny_base).state_dict()
    generator = torch.Generator().manual_seed(0)
    first = {k: (v + torch.randn(v.shape, generator=generator) if v.is_floating_point() else v + 3)
             for k, v in reference.items()}
    second = {k: (v - 2 * torch.randn(v.shape, generator=generator) if v.is_floating_point() else v + 7)
              for k, v in reference.items()}
    a = hand_made(tmp_path / "a.ckpt", first)
    b = hand_made(tmp_path / "b.ckpt", second)
    averaged = average_checkpoints([a, b], reference)
    assert set(averaged) == set(reference)
    integer_keys = [k for k, v in reference.items() if not v.is_floating_point()]
    assert any("num_batches_tracked" in k for k in integer_keys)
    for key, value in averaged.items():
        if value.is_floating_point():
            assert torch.equal(value, (first[key] + second[key]) / 2), key
        else:
            assert torch.equal(value, first[key]), key
    weighted = average_checkpoints([a, b], reference, weights=[3.0, 1.0])
    key = next(k for k in integer_keys)
    float_key = next(k for k, v in reference.items() if v.is_floating_point())
    torch.testing.assert_close(weighted[float_key], (3 * first[float_key] + second[float_key]) / 4)
    assert torch.equal(weighted[key], first[key])


def test_a_tensor_equal_in_every_checkpoint_is_kept_to_the_bit(tmp_path, tiny_base):
    """Frozen layers and the preprocessor's filterbank are the same in every checkpoint: the average
    keeps them as they are, where (x + x + x) / 3 in float32 moves some of their values by a
    rounding step (and with it the preprocessor's fingerprint, which the exports' reuse of the base
    model's front end compares)."""
    from quranft.models import nemo_models

    reference = nemo_models.restore(tiny_base).state_dict()
    frozen = [k for k, v in reference.items() if v.is_floating_point() and k.startswith("preprocessor.")]
    generator = torch.Generator().manual_seed(1)
    states = [{k: v if k in frozen or not v.is_floating_point() else v + torch.randn(v.shape, generator=generator)
               for k, v in reference.items()} for _ in range(3)]
    paths = [hand_made(tmp_path / f"{number}.ckpt", state) for number, state in enumerate(states)]
    averaged = average_checkpoints(paths, reference)
    assert frozen and any(not torch.equal((3 * reference[k]) / 3, reference[k]) for k in frozen)  # rounding would move them
    for key in frozen:
        assert torch.equal(averaged[key], reference[key]), key
    moving = next(k for k, v in reference.items() if v.is_floating_point() and k not in frozen)
    assert torch.equal(averaged[moving], (states[0][moving] + states[1][moving] + states[2][moving]) / 3)


def test_the_guard_reads_at_most_max_val_clips_spread_over_the_manifest(tmp_path):
    manifest = tmp_path / "validation.jsonl"
    manifest.write_text("".join(json.dumps({"audio_filepath": f"{i}.flac", "text": "t"}) + "\n" for i in range(10)),
                        encoding="utf-8")
    assert [row["audio_filepath"] for row in guard_rows(manifest, 4)] == ["0.flac", "2.flac", "5.flac", "7.flac"]
    assert len(guard_rows(manifest, 10)) == len(guard_rows(manifest, None)) == 10


def test_the_guard_decodes_only_its_bounded_share_of_validation(trained, tiny_base, monkeypatch):
    from quranft.models import transcribe

    decoded = []
    real = transcribe.transcribe_files

    def spy(model, paths, **kwargs):
        decoded.append([Path(p).name for p in paths])
        return real(model, paths, **kwargs)

    monkeypatch.setattr(transcribe, "transcribe_files", spy)
    result = average_trial(trained, tiny_base, top_k=2, mode="always", max_val_clips=3)
    expected = [Path(row["audio_filepath"]).name for row in guard_rows(trained / "data" / "validation.jsonl", 3)]
    assert result["validation_clips"] == 3 and len(expected) == 3
    assert decoded == [expected, expected]  # the best single checkpoint, then the average


def test_a_ctc_only_trials_model_transcribes_in_nemo_as_the_benchmark_scored(trained, tiny_base, tmp_path):
    """NeMo's own restore_from(...).transcribe(files) of a CTC-only trial's model.nemo gives the
    transcripts its benchmark scored: the CTC head's, greedy (a hybrid file would decode with the
    RNNT head the trial never trained)."""
    from nemo.collections.asr.models import ASRModel

    from quranft.evaluation.benchmark import run_benchmark

    result = average_trial(trained, tiny_base, top_k=3, mode="always")
    assert result["choice"] == "averaged" and len(result["members"]) >= 2
    written = json.loads((trained / "averaging.json").read_text(encoding="utf-8"))
    assert written["averaged"]["validation_wer"] == result["averaged"]["validation_wer"]
    corpus = wav_corpus(tmp_path / "corpus")
    benchmark = run_benchmark(trained / "model.nemo", corpus, tmp_path / "benchmark.json", "o", batch_size=None)
    assert "decoders" not in benchmark  # no RNNT head to judge
    scored = {row["file"]: row["transcript"] for row in benchmark["rows"]}
    assert sum(bool(text.strip()) for text in scored.values()) >= 4  # the overfit model writes text

    model = ASRModel.restore_from(str(trained / "model.nemo"), map_location="cpu")
    assert type(model).__name__ == "EncDecCTCModelBPE" and not hasattr(model, "joint")
    hypotheses = model.transcribe([str(corpus / name) for name in scored], batch_size=4, verbose=False)
    assert [h.text for h in hypotheses] == list(scored.values())


def wav_corpus(folder: Path) -> Path:
    """The demo benchmark's mono WAV clips (NeMo's transcribe reads WAV, and one channel) as a corpus."""
    manifest = json.loads((DEMO / "benchmark" / "manifest.json").read_text(encoding="utf-8"))
    manifest["samples"] = [s for s in manifest["samples"] if s["file"].endswith(".wav")
                           and soundfile.info(DEMO / "benchmark" / s["file"]).channels == 1]
    folder.mkdir(parents=True)
    for sample in manifest["samples"]:
        shutil.copy2(DEMO / "benchmark" / sample["file"], folder / sample["file"])
    (folder / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    return folder


def test_the_guard_keeps_the_best_single_checkpoint_when_the_average_is_worse(trained, tiny_base, tmp_path):
    metadata = json.loads((trained / "training_metadata.json").read_text(encoding="utf-8"))
    # The last checkpoint has trained longest on the (overfit) clips: the good one here.
    good = Path(metadata["checkpoints"]["last"])
    state = load_state_dict(good)
    generator = torch.Generator().manual_seed(1)
    ruined = {k: (torch.randn(v.shape, generator=generator) * 3 if v.is_floating_point() else v)
              for k, v in state.items()}
    bad = hand_made(tmp_path / "ruined.ckpt", ruined)
    monitor = metadata["training"]["monitor"]
    metadata["checkpoints"]["top_k"] = [{"path": str(good), monitor: 0.5}, {"path": str(bad), monitor: 0.99}]
    (trained / "training_metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
    result = average_trial(trained, tiny_base, top_k=2, mode="better")
    assert result["best_single"]["validation_wer"] < 0.9  # the overfit model really transcribes
    assert result["averaged"]["validation_wer"] > result["best_single"]["validation_wer"]
    assert result["choice"] == "best_single"
    from quranft.models import nemo_models

    kept = nemo_models.restore(trained / "model.nemo").state_dict()
    expected = nemo_models.ctc_state_dict(state)  # a CTC-only trial's: its CTC model's weights
    assert set(kept) == set(expected) and all(torch.equal(kept[k], expected[k]) for k in expected)


def test_a_truncated_checkpoint_is_named_and_no_model_is_written(tmp_path, trained, tiny_base):
    trial_dir = tmp_path / "trial"
    (trial_dir / "data").mkdir(parents=True)
    metadata = json.loads((trained / "training_metadata.json").read_text(encoding="utf-8"))
    best = Path(metadata["checkpoints"]["top_k"][0]["path"])
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(best.read_bytes()[: best.stat().st_size // 2])
    metadata["checkpoints"]["top_k"] = [{"path": str(truncated), metadata["training"]["monitor"]: 0.5}]
    (trial_dir / "training_metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
    with pytest.raises(AveragingError, match=r"truncated\.ckpt: not a readable checkpoint"):
        average_trial(trial_dir, tiny_base, top_k=1)
    assert not (trial_dir / "model.nemo").exists()
    assert not list(trial_dir.glob(".model.nemo*"))


def test_a_checkpoint_of_another_architecture_is_named(tmp_path, tiny_base):
    from quranft.models import nemo_models

    reference = nemo_models.restore(tiny_base).state_dict()
    other = dict(reference)
    key = next(k for k in reference if k.startswith("ctc_decoder.") and reference[k].dim() > 1)
    other[key] = torch.zeros(reference[key].shape[0] + 5, *reference[key].shape[1:])
    path = hand_made(tmp_path / "other.ckpt", other)
    with pytest.raises(AveragingError, match=r"other\.ckpt: tensor ctc_decoder\..* has shape .* tokenizer"):
        average_checkpoints([path], reference)
