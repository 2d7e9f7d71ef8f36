"""Which head NeMo decodes a saved .nemo with: a CTC-only trial's file is NeMo's CTC model, a
hybrid stays a hybrid (NeMo's default head, RNNT). The real trained trial's transcripts against
its benchmark: tests/test_average.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import synth
from quranft.models import nemo_models
from quranft.models.transcribe import has_rnnt_head, transcribe_samples, use_ctc_greedy


@pytest.fixture(scope="module")
def saved(tiny_base, tmp_path_factory):
    """The tiny hybrid saved both ways: (the hybrid, its hybrid file, its CTC-only file)."""
    work = tmp_path_factory.mktemp("saved")
    hybrid = nemo_models.restore(tiny_base)
    nemo_models.save(hybrid, work / "hybrid.nemo")
    nemo_models.save(hybrid, work / "ctc.nemo", ctc_only=True)
    return hybrid, work / "hybrid.nemo", work / "ctc.nemo"


def test_a_ctc_only_file_is_nemos_ctc_model_with_the_hybrids_ctc_path(saved):
    from nemo.collections.asr.models import ASRModel

    hybrid, _, ctc_file = saved
    model = ASRModel.restore_from(str(ctc_file), map_location="cpu")
    assert type(model).__name__ == "EncDecCTCModelBPE"
    assert model.cfg.target == nemo_models.CTC_CLASS
    assert not {"joint", "aux_ctc", "model_defaults", "loss"} & set(model.cfg)
    assert model.cfg.decoding.strategy == "greedy_batch"  # the decoding the benchmark uses
    state, expected = model.state_dict(), nemo_models.ctc_state_dict(hybrid.state_dict())
    assert set(state) == set(expected) and all(torch.equal(state[k], expected[k]) for k in expected)
    assert not any(key.startswith(("joint.", "ctc_decoder.", "decoder.prediction")) for key in state)
    assert not has_rnnt_head(model)


def test_a_hybrid_file_stays_a_hybrid_that_nemo_decodes_with_its_rnnt_head(saved):
    """The base model (and a trial that trains both heads) keeps both heads; NeMo's default for a
    restored hybrid is the RNNT head, and the benchmark names the head it decodes with itself."""
    from nemo.collections.asr.models import ASRModel

    _, hybrid_file, _ = saved
    model = ASRModel.restore_from(str(hybrid_file), map_location="cpu")
    assert type(model).__name__ == "EncDecHybridRNNTCTCBPEModel" and model.cur_decoder == "rnnt"
    assert has_rnnt_head(model)
    use_ctc_greedy(model)
    assert model.cur_decoder == "ctc"
    # why a CTC-only trial's file is a CTC model: a hybrid switched to its CTC head before it is
    # saved is restored decoding with its RNNT head again
    nemo_models.save(model, hybrid_file.with_name("switched.nemo"))
    assert ASRModel.restore_from(str(hybrid_file.with_name("switched.nemo")), map_location="cpu").cur_decoder == "rnnt"


@pytest.mark.slow  # 10 s; the trained trial's transcripts against its benchmark are test_average's
def test_both_files_give_the_same_ctc_log_probs(saved):
    hybrid_model = nemo_models.restore(saved[1])
    ctc_model = nemo_models.restore(saved[2])
    clips = [synth(1.3, seed=1).astype(np.float32), synth(2.1, seed=2).astype(np.float32)]
    for model in (hybrid_model, ctc_model):
        use_ctc_greedy(model)
    first, second = (transcribe_samples(m, clips, keep_log_probs=True) for m in (hybrid_model, ctc_model))
    for a, b in zip(first, second):
        assert a.text == b.text
        np.testing.assert_array_equal(a.log_probs, b.log_probs)


def test_training_and_averaging_refuse_a_ctc_model_as_their_base_by_its_file(saved):
    for kind in ({"ctc_only": True}, {"hybrid": True}):
        with pytest.raises(nemo_models.NotAHybridModel, match=r"ctc\.nemo: a EncDecCTCModelBPE, not a hybrid "
                                                              r"RNNT/CTC BPE model$"):
            nemo_models.restore(saved[2], **kind)


@pytest.mark.parametrize("file, kind", [(1, {}), (1, {"ctc_only": True}), (2, {})],
                         ids=["hybrid", "hybrid-for-ctc-only-training", "ctc"])
def test_restore_gives_nemos_model_to_the_bit(saved, file, kind):
    """restore holds one copy of the weights while loading (it assigns the checkpoint's tensors in
    place of the initial ones): the same model as NeMo's restore_from, every weight and every
    buffer, the non-persistent ones (positional encodings) that no state dict holds included."""
    from nemo.collections.asr.models import ASRModel
    from nemo.core.connectors.save_restore_connector import SaveRestoreConnector

    cls = nemo_models.CTCOnlyHybridModel if kind else ASRModel
    ours, nemos = nemo_models.restore(saved[file], **kind), cls.restore_from(str(saved[file]), map_location="cpu")
    assert type(ours) is type(nemos) and ours.cfg == nemos.cfg
    for get in (lambda m: m.state_dict(), lambda m: dict(m.named_buffers()), lambda m: dict(m.named_parameters())):
        mine, theirs = get(ours), get(nemos)
        assert list(mine) == list(theirs)
        for key, tensor in theirs.items():
            assert (type(mine[key]), mine[key].dtype, mine[key].device, mine[key].requires_grad) == \
                   (type(tensor), tensor.dtype, tensor.device, tensor.requires_grad), key
            assert torch.equal(mine[key], tensor), key
    assert any(key.endswith(".pe") for key in dict(ours.named_buffers())) and "encoder.pos_enc.pe" not in ours.state_dict()
    assert [m.training for m in ours.modules()] == [m.training for m in nemos.modules()]
    for lstm in (m for m in ours.modules() if isinstance(m, torch.nn.LSTM)):  # what its forward runs on
        assert all(w is getattr(lstm, name) for w, name in zip(lstm._flat_weights, lstm._flat_weights_names))
    assert type(ours._save_restore_connector) is SaveRestoreConnector  # save_to as after NeMo's restore
