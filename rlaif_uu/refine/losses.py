"""Risks for learning a harm classifier g from two pseudo-labelled sets.

Notation (as in arXiv:2502.12565): positive = harmful. P̃ is the set the judge
called harmful, Ñ the set it called safe. θp = P(harmful | P̃), θn =
P(harmful | Ñ), π = P(harmful) in the target distribution, Δ = θp − θn.
The surrogate loss is the sigmoid loss ℓ(z, y) = σ(−y·z), so
ℓ(g, +1) = σ(−g) and ℓ(g, −1) = σ(g).

Every function takes the classifier logits on the P̃ rows and on the Ñ rows of a
batch; an empty side contributes zero to its expectations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class UUCoefficients:
    """The four weights of the unbiased UU risk (Lu et al., ICLR 2019, Theorem 4).

    a = (1−θn)π/Δ, b = θn(1−π)/Δ, c = (1−θp)π/Δ, d = θp(1−π)/Δ.
    """

    a: float
    b: float
    c: float
    d: float

    @classmethod
    def from_priors(cls, theta_p: float, theta_n: float, pi: float) -> UUCoefficients:
        """Compute the coefficients; ``ValueError`` when Δ = θp − θn ≤ 0."""
        delta = theta_p - theta_n
        if delta <= 0:
            raise ValueError(f"theta_p - theta_n = {delta:.3f} must be positive")
        return cls(
            a=(1 - theta_n) * pi / delta,
            b=theta_n * (1 - pi) / delta,
            c=(1 - theta_p) * pi / delta,
            d=theta_p * (1 - pi) / delta,
        )


def _mean(x: torch.Tensor) -> torch.Tensor:
    return x.mean() if x.numel() else x.new_zeros(())


def _partial_risks(g_p: torch.Tensor, g_n: torch.Tensor, k: UUCoefficients) -> tuple[torch.Tensor, torch.Tensor]:
    """The positive-class and negative-class partial risks of the UU decomposition.

    R+ = a·E_P̃[σ(−g)] − c·E_Ñ[σ(−g)]   (estimates π·E_harmful[ℓ(g,+1)])
    R− = d·E_Ñ[σ(g)] − b·E_P̃[σ(g)]    (estimates (1−π)·E_safe[ℓ(g,−1)])
    """
    r_pos = k.a * _mean(torch.sigmoid(-g_p)) - k.c * _mean(torch.sigmoid(-g_n))
    r_neg = k.d * _mean(torch.sigmoid(g_n)) - k.b * _mean(torch.sigmoid(g_p))
    return r_pos, r_neg


def pn_risk(g_p: torch.Tensor, g_n: torch.Tensor, pi: float | None = None) -> torch.Tensor:
    """Supervised PN risk with the sigmoid loss, treating pseudo labels as true.

    R = π·E_P̃[σ(−g)] + (1−π)·E_Ñ[σ(g)]; with ``pi=None`` the class weight is the
    empirical share of P̃ in the batch (a plain mean over rows).
    """
    if pi is None:
        total = g_p.numel() + g_n.numel()
        pi = g_p.numel() / total if total else 0.5
    return pi * _mean(torch.sigmoid(-g_p)) + (1 - pi) * _mean(torch.sigmoid(g_n))


def uu_risk(g_p: torch.Tensor, g_n: torch.Tensor, k: UUCoefficients) -> torch.Tensor:
    """Unbiased UU risk (Lu et al., ICLR 2019, Eq. 5):

    R(g) = a·E_P̃[σ(−g)] − b·E_P̃[σ(g)] − c·E_Ñ[σ(−g)] + d·E_Ñ[σ(g)].
    """
    r_pos, r_neg = _partial_risks(g_p, g_n, k)
    return r_pos + r_neg


def f_lambda(x: torch.Tensor, lam: float) -> torch.Tensor:
    """The correction f_λ(x) = x if x > 0 else λ·x (Lu et al., AISTATS 2020, Eq. 8).

    λ = 0 is the ReLU correction, λ = −1 the absolute value; the default of the
    refinement paper is λ = −0.001 (a small push back towards positive risk).
    """
    return torch.where(x > 0, x, lam * x)


def robust_uu_risk(g_p: torch.Tensor, g_n: torch.Tensor, k: UUCoefficients, lam: float = -0.001) -> torch.Tensor:
    """Robust (corrected) UU risk (Lu et al., AISTATS 2020, Eq. 9):

    R(g) = f_λ(a·E_P̃[σ(−g)] − c·E_Ñ[σ(−g)]) + f_λ(d·E_Ñ[σ(g)] − b·E_P̃[σ(g)]).

    Each partial risk estimates a non-negative quantity; when a flexible model
    drives one below zero (overfitting), f_λ stops or reverses that gradient.
    """
    r_pos, r_neg = _partial_risks(g_p, g_n, k)
    return f_lambda(r_pos, lam) + f_lambda(r_neg, lam)
