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


# Elements of the joint's output taken at a time in the log-softmax: its temporaries stay near 64 MB.
_CHUNK_ELEMENTS = 16 * 2**20


def _frame_steps(acts: torch.Tensor):
    """Slices of frames, each of at most about _CHUNK_ELEMENTS elements of `acts`."""
    batch, frames, positions, vocabulary = acts.shape
    step = max(1, _CHUNK_ELEMENTS // max(1, batch * positions * vocabulary))
    return [slice(start, start + step) for start in range(0, frames, step)]


class LatticeLogProbs(torch.autograd.Function):
    """The two log-probabilities of each lattice cell, from the joint's output [B, T, U+1, V]: the
    blank's [B, T, U+1] and the next label's [B, T, U] (log-softmax over V), as float64.

    Only these enter the RNNT lattice, so the whole log-softmax is never held: its normaliser is
    taken a few frames at a time, and the backward pass writes the joint's gradient (the one
    tensor of its size it makes) a few frames at a time too, softmax and all."""

    @staticmethod
    def forward(ctx, acts: torch.Tensor, targets: torch.Tensor, blank: int):
        normaliser = torch.cat([torch.logsumexp(acts[:, frames], dim=-1) for frames in _frame_steps(acts)], dim=1)
        index = targets[:, None, :, None].expand(acts.shape[0], acts.shape[1], -1, 1)
        blank_lp = acts[..., blank] - normaliser
        label_lp = acts[:, :, :-1, :].gather(-1, index).squeeze(-1) - normaliser[:, :, :-1]
        ctx.save_for_backward(acts, index, normaliser)
        ctx.blank = blank
        return blank_lp.double(), label_lp.double()

    @staticmethod
    def backward(ctx, blank_grad: torch.Tensor, label_grad: torch.Tensor):
        acts, index, normaliser = ctx.saved_tensors
        blank_grad, label_grad = blank_grad.to(acts.dtype), label_grad.to(acts.dtype)
        total = blank_grad.clone()
        total[:, :, :-1] += label_grad
        grad = torch.empty_like(acts)
        for frames in _frame_steps(acts):  # d(x_k - logsumexp x) / dx = onehot(k) - softmax(x)
            grad[:, frames] = -total[:, frames, :, None] * torch.exp(acts[:, frames] - normaliser[:, frames, :, None])
        grad[..., ctx.blank] += blank_grad
        grad[:, :, :-1].scatter_add_(-1, index, label_grad[..., None])
        return grad, None, None


def rnnt_costs(acts: torch.Tensor, labels: torch.Tensor, act_lens: torch.Tensor, label_lens: torch.Tensor,
               blank: int) -> torch.Tensor:
    """Per-sample RNNT costs (negative log-likelihoods) of joint outputs `acts` [B, T, U+1, V].

    `acts` are normalised here with a log-softmax over the vocabulary, as warp-transducer does (on the
    CPU, NeMo's joint already returns log-probabilities; normalising again changes nothing). Beyond
    `acts` itself (and, in the backward pass, its gradient), memory grows with B x T x U, not with the
    vocabulary.
    """
    targets = labels[:, : acts.shape[2] - 1].long().clamp(min=0)
    blank_lp, label_lp = LatticeLogProbs.apply(acts.float(), targets, blank)  # [B, T, U+1], [B, T, U]
    return lattice_costs(blank_lp, label_lp, act_lens, label_lens)


def lattice_costs(blank_lp: torch.Tensor, label_lp: torch.Tensor, act_lens: torch.Tensor,
                  label_lens: torch.Tensor) -> torch.Tensor:
    """Per-sample costs from each lattice cell's blank [B, T, U+1] and next-label [B, T, U]
    log-probabilities (float64): the forward variables, one frame at a time."""
    batch, frames, positions = blank_lp.shape
    # C[t, u]: log-probability of emitting labels 0..u-1 in frame t
    cumulative = torch.cat([label_lp.new_zeros(batch, frames, 1), label_lp.cumsum(dim=-1)], dim=-1)
    prev = torch.full((batch, positions), _LOG_ZERO, dtype=torch.float64, device=blank_lp.device)
    prev[:, 0] = 0.0
    alphas = []
    for t in range(frames):
        alpha = cumulative[:, t] + torch.logcumsumexp(prev - cumulative[:, t], dim=-1)
        alphas.append(alpha)
        prev = alpha + blank_lp[:, t]
    final = torch.stack(alphas, dim=1) + blank_lp  # [B, T, U+1]: alpha[t, u] + blank[t, u]
    rows = torch.arange(batch, device=blank_lp.device)
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
