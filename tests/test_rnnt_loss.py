"""The vectorised CPU RNNT loss against NeMo's own (numba/warp-transducer port): same value, same gradient."""

from __future__ import annotations

import pytest
import torch
from nemo.collections.asr.losses.rnnt import RNNTLoss

from quranft.models.rnnt_loss import VectorizedRNNTLoss, install


def _loss_and_grad(loss, acts, labels, act_lens, label_lens):
    acts = acts.clone().requires_grad_(True)
    value = loss(log_probs=acts, targets=labels, input_lengths=act_lens, target_lengths=label_lens)
    value.backward()
    return value.detach(), acts.grad


@pytest.mark.parametrize("reduction", ["mean_batch", "sum", "mean"])
@pytest.mark.parametrize("seed", [0, 1])
def test_same_loss_and_gradient_as_nemos_default_loss(reduction, seed):
    torch.manual_seed(seed)
    batch, frames, tokens, vocab = 5, 23, 9, 17
    acts = torch.randn(batch, frames, tokens + 1, vocab) * 3
    labels = torch.randint(0, vocab - 1, (batch, tokens))
    # padded frames and targets, an empty target (not with reduction mean, which divides by its
    # length), a target as long as allowed
    act_lens = torch.tensor([23, 20, 5, 11, 23])
    label_lens = torch.tensor([9, 3, 1 if reduction == "mean" else 0, 9, 5])
    nemo = RNNTLoss(num_classes=vocab - 1, loss_name="default", reduction=reduction)
    ours = RNNTLoss(num_classes=vocab - 1, loss_name="default", reduction=reduction)
    assert install(ours, "default")
    assert isinstance(ours._loss, VectorizedRNNTLoss)
    expected, expected_grad = _loss_and_grad(nemo, acts, labels, act_lens, label_lens)
    value, grad = _loss_and_grad(ours, acts, labels, act_lens, label_lens)
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    # NeMo's reference runs in float32: gradients of magnitude up to 1 agree to about 2e-5
    assert torch.allclose(grad, expected_grad, atol=1e-4)
    assert grad[1, 20:].abs().max() == 0 and grad[1, :, 4:].abs().max() == 0  # nothing for the padding


def test_log_probabilities_that_spell_the_target_cost_almost_nothing():
    vocab, blank = 6, 5
    labels = torch.tensor([[2, 4, 1]])
    acts = torch.full((1, 4, 4, vocab), -30.0)
    # frame 0 emits 2, 4, 1 in turn, then a blank at every frame
    for u, token in enumerate(labels[0].tolist()):
        acts[0, 0, u, token] = 0.0
    acts[0, :, 3, blank] = 0.0
    acts[0, 1:, :3, blank] = 0.0
    loss = VectorizedRNNTLoss(blank=blank)
    cost = loss(acts, labels, torch.tensor([4]), torch.tensor([3]))
    assert cost.shape == (1,) and cost.item() == pytest.approx(0.0, abs=1e-6)


def test_nemos_loss_stays_where_it_computes_something_else():
    assert not install(RNNTLoss(num_classes=16, loss_name="default", loss_kwargs={"fastemit_lambda": 0.01}),
                       "default")
    assert not install(RNNTLoss(num_classes=16, loss_name="default", loss_kwargs={"clamp": 1.0}), "default")
    assert not install(RNNTLoss(num_classes=16, loss_name="pytorch"), "pytorch")
