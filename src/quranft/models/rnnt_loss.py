"""The RNNT loss on the CPU, vectorised: the value and gradient of NeMo's default loss, fast.

NeMo's default RNNT loss (warprnnt_numba) runs, on the CPU, a Python port of warp-transducer with
one interpreted call per lattice cell (nemo/.../numba/rnnt_loss/utils/cpu_utils/cpu_rnnt.py): a
demo-size batch (8 clips x 100 frames x 40 tokens) takes about 5.5 s, which made a hybrid trial ten
times slower than a CTC-only one. NeMo's "pytorch" loss loops the same way, and torchaudio (whose
rnnt_loss is compiled) has no release for this torch. This module computes the same quantity with
tensor operations, one step per frame: within a frame, the forward variables along the target
follow from the previous frame's by a cumulative log-sum-exp, so autograd gives the gradient.

    alpha[t, u] = logaddexp(alpha[t-1, u] + blank[t-1, u], alpha[t, u-1] + label[t, u-1])
                = C[u] + logcumsumexp_k(prev[k] - C[k])[u],  prev[k] = alpha[t-1, k] + blank[t-1, k],
                  C[u] = label[t, 0] + ... + label[t, u-1]
    loss = -(alpha[T-1, U] + blank[T-1, U])

Only the plain loss is covered (no FastEmit, no gradient clamp): `install` keeps NeMo's own loss
wherever those are set, and on GPUs, where NeMo's CUDA kernels are the fast path.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger("quranft")

# Stands for log(0) in the lattice: finite, so that no inf - inf appears in the forward or backward.
_LOG_ZERO = -1.0e30


def rnnt_costs(acts: torch.Tensor, labels: torch.Tensor, act_lens: torch.Tensor, label_lens: torch.Tensor,
               blank: int) -> torch.Tensor:
    """Per-sample RNNT costs (negative log-likelihoods) of joint outputs `acts` [B, T, U+1, V].

    `acts` are normalised here with a log-softmax over the vocabulary, as warp-transducer does (on the
    CPU, NeMo's joint already returns log-probabilities; normalising again changes nothing).
    """
    batch, frames, positions, _ = acts.shape
    log_probs = torch.log_softmax(acts.float(), dim=-1).double()
    blank_lp = log_probs[..., blank]  # [B, T, U+1]
    targets = labels[:, : positions - 1].long().clamp(min=0)
    label_lp = log_probs[:, :, :-1, :].gather(-1, targets[:, None, :, None].expand(batch, frames, -1, 1))
    label_lp = label_lp.squeeze(-1)  # [B, T, U]
    # C[t, u]: log-probability of emitting labels 0..u-1 in frame t
    cumulative = torch.cat([label_lp.new_zeros(batch, frames, 1), label_lp.cumsum(dim=-1)], dim=-1)
    prev = torch.full((batch, positions), _LOG_ZERO, dtype=log_probs.dtype, device=acts.device)
    prev[:, 0] = 0.0
    alphas = []
    for t in range(frames):
        alpha = cumulative[:, t] + torch.logcumsumexp(prev - cumulative[:, t], dim=-1)
        alphas.append(alpha)
        prev = alpha + blank_lp[:, t]
    final = torch.stack(alphas, dim=1) + blank_lp  # [B, T, U+1]: alpha[t, u] + blank[t, u]
    rows = torch.arange(batch, device=acts.device)
    return -final[rows, act_lens.long() - 1, label_lens.long()].float()


class VectorizedRNNTLoss(torch.nn.Module):
    """Drop-in for the per-sample loss inside NeMo's RNNTLoss (its `_loss`): same call, costs [B].
    NeMo's RNNTLoss reduces the costs itself (it sets `reduction` to None around each call)."""

    def __init__(self, blank: int):
        super().__init__()
        self.blank = blank
        self.reduction = None

    def forward(self, acts, labels, act_lens, label_lens):
        return rnnt_costs(acts, labels, act_lens, label_lens, self.blank)


def install(rnnt_loss, loss_name: str) -> bool:
    """Use the vectorised computation inside NeMo's RNNTLoss `rnnt_loss` where it computes exactly what
    NeMo's default would: the default (numba) loss, with neither FastEmit nor a gradient clamp. True
    when installed."""
    inner = rnnt_loss._loss
    if loss_name not in ("default", "warprnnt_numba") or type(inner).__name__ != "RNNTLossNumba":
        return False
    if getattr(inner, "fastemit_lambda", 0.0) or getattr(inner, "clamp", -1) > 0:
        return False
    rnnt_loss._loss = VectorizedRNNTLoss(blank=rnnt_loss._blank)
    log.info("RNNT loss: vectorised PyTorch computation on the CPU (the value and gradient of NeMo's numba loss)")
    return True
