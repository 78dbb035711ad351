"""Heads over fixed sentence embeddings: linear, MLP, and the request-aware factored head (see :class:`FactoredHead`)."""

from __future__ import annotations

import torch


class Head(torch.nn.Module):
    """Linear or one-hidden-layer MLP head over fixed embeddings, standardised per dimension.

    Normalised sentence embeddings have per-dimension spread ~1/sqrt(dim); the
    z-scoring (corpus mean and std, saved with the head) keeps the head well conditioned.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, hidden: int) -> None:
        super().__init__()
        dim = mean.shape[0]
        self.register_buffer("mean", mean.clone())
        self.register_buffer("std", std.clone())
        self.net = (
            torch.nn.Linear(dim, 1)
            if hidden <= 0
            else torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.GELU(), torch.nn.Dropout(0.1), torch.nn.Linear(hidden, 1))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std).squeeze(-1)


class FactoredHead(torch.nn.Module):
    """Request-aware head over ``[e(request), e(answer)]``: P(harmful) = P(harmful request) x P(answer complies).

    The harmful label is "a harmful request AND an answer that does not refuse it" (the
    HarmBench / Do-Not-Answer convention), so the head is that product of two logistic
    factors, one on each turn's embedding. Within one prompt the score then moves only
    with the answer factor, and only rows whose request looks harmful teach it: a benign
    exchange's helpful style cannot become evidence of safety the way it does for a linear
    head over the concatenation, whose answer weights are shared by every prompt. Returns
    the log-odds ``log p - log(1 - p)`` so every risk of :mod:`rlaif_uu.refine.losses` applies.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, hidden: int) -> None:
        super().__init__()
        self.register_buffer("mean", mean.clone())
        self.register_buffer("std", std.clone())
        self.half = mean.shape[0] // 2
        self.request = Head(torch.zeros(self.half), torch.ones(self.half), hidden)
        self.answer = Head(torch.zeros(self.half), torch.ones(self.half), hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.mean) / self.std
        log_p = torch.nn.functional.logsigmoid(self.request(z[:, : self.half])) + \
            torch.nn.functional.logsigmoid(self.answer(z[:, self.half :]))
        log_p = log_p.clamp(max=-1e-6)
        return log_p - torch.log(-torch.expm1(log_p))


HEADS = ("linear", "mlp", "factored", "factored_mlp")
