"""Losses: coefficients against the algebra, the robust correction, finite gradients."""

import math

import pytest
import torch

from rlaif_uu.refine import losses


def test_coefficients_reduce_to_pn_when_sets_are_clean() -> None:
    # θp = 1, θn = 0: P̃ is all harmful, Ñ all safe -> a = π, b = 0, c = 0, d = 1 − π.
    k = losses.UUCoefficients.from_priors(1.0, 0.0, 0.3)
    assert (k.a, k.b, k.c, k.d) == pytest.approx((0.3, 0.0, 0.0, 0.7))
    g_p, g_n = torch.randn(7), torch.randn(5)
    assert losses.uu_risk(g_p, g_n, k) == pytest.approx(float(losses.pn_risk(g_p, g_n, pi=0.3)))
    assert losses.robust_uu_risk(g_p, g_n, k) == pytest.approx(float(losses.pn_risk(g_p, g_n, pi=0.3)))


def test_coefficients_match_the_formulas() -> None:
    tp, tn, pi = 0.8, 0.2, 0.4
    k = losses.UUCoefficients.from_priors(tp, tn, pi)
    d = tp - tn
    assert k.a == pytest.approx((1 - tn) * pi / d)
    assert k.b == pytest.approx(tn * (1 - pi) / d)
    assert k.c == pytest.approx((1 - tp) * pi / d)
    assert k.d == pytest.approx(tp * (1 - pi) / d)
    # identities of the UU decomposition: a − c = π and d − b = 1 − π
    assert k.a - k.c == pytest.approx(pi)
    assert k.d - k.b == pytest.approx(1 - pi)


def test_uu_risk_is_unbiased_for_the_pn_risk() -> None:
    # Build P̃ and Ñ as exact mixtures of fixed harmful/safe logits; the UU risk must equal
    # the true PN risk π·E_H[σ(−g)] + (1−π)·E_S[σ(g)].
    g_h, g_s = torch.tensor([2.0, 1.0, -0.5, 0.3]), torch.tensor([-1.0, 0.5, -2.0, -0.2])
    tp, tn, pi = 0.75, 0.25, 0.5
    # P̃ = 3 copies of harmful + 1 copy of safe per unit (θp = .75); Ñ the reverse (θn = .25)
    g_p = torch.cat([g_h, g_h, g_h, g_s])
    g_n = torch.cat([g_h, g_s, g_s, g_s])
    k = losses.UUCoefficients.from_priors(tp, tn, pi)
    true = pi * torch.sigmoid(-g_h).mean() + (1 - pi) * torch.sigmoid(g_s).mean()
    assert float(losses.uu_risk(g_p, g_n, k)) == pytest.approx(float(true), abs=1e-6)


def test_delta_must_be_positive() -> None:
    with pytest.raises(ValueError):
        losses.UUCoefficients.from_priors(0.3, 0.3, 0.3)


def test_correction_flips_a_negative_partial_risk() -> None:
    k = losses.UUCoefficients.from_priors(0.6, 0.4, 0.5)
    # Confident "harmful" logits on Ñ and P̃ alike make the negative partial risk
    # d·E_Ñ[σ(g)] − b·E_P̃[σ(g)] small and the positive one a·E_P̃[σ(−g)] − c·E_Ñ[σ(−g)] > 0;
    # push g_p very negative so the positive partial risk goes negative.
    g_p, g_n = torch.full((4,), -6.0), torch.full((4,), 6.0)
    r_pos = k.a * torch.sigmoid(-g_p).mean() - k.c * torch.sigmoid(-g_n).mean()
    r_neg = k.d * torch.sigmoid(g_n).mean() - k.b * torch.sigmoid(g_p).mean()
    assert r_neg > 0 and r_pos > 0  # sanity of the construction on this side
    g_p2, g_n2 = torch.full((4,), 6.0), torch.full((4,), -6.0)
    r_pos2 = k.a * torch.sigmoid(-g_p2).mean() - k.c * torch.sigmoid(-g_n2).mean()
    assert r_pos2 < 0  # a flexible model can drive a partial risk below zero
    lam = -0.5
    uu = float(losses.uu_risk(g_p2, g_n2, k))
    robust = float(losses.robust_uu_risk(g_p2, g_n2, k, lam=lam))
    r_neg2 = k.d * torch.sigmoid(g_n2).mean() - k.b * torch.sigmoid(g_p2).mean()
    assert robust == pytest.approx(lam * float(r_pos2) + float(losses.f_lambda(r_neg2, lam)))
    assert robust > uu  # the correction turns the negative part into a penalty
    # λ = 0 is the ReLU correction, λ = −1 the absolute value
    assert float(losses.f_lambda(torch.tensor(-2.0), 0.0)) == 0.0
    assert float(losses.f_lambda(torch.tensor(-2.0), -1.0)) == 2.0


@pytest.mark.parametrize("fn", ["pn", "uu", "robust"])
def test_gradients_are_finite(fn: str) -> None:
    k = losses.UUCoefficients.from_priors(0.7, 0.1, 0.3)
    g_p = (torch.randn(16) * 20).requires_grad_()
    g_n = (torch.randn(9) * 20).requires_grad_()
    risk = {"pn": lambda: losses.pn_risk(g_p, g_n), "uu": lambda: losses.uu_risk(g_p, g_n, k),
            "robust": lambda: losses.robust_uu_risk(g_p, g_n, k)}[fn]()
    risk.backward()
    assert math.isfinite(float(risk))
    assert torch.isfinite(g_p.grad).all() and torch.isfinite(g_n.grad).all()


def test_empty_side_contributes_zero() -> None:
    k = losses.UUCoefficients.from_priors(0.9, 0.1, 0.5)
    g_p = torch.tensor([1.0, -1.0])
    expected = k.a * torch.sigmoid(-g_p).mean() + (-k.b) * torch.sigmoid(g_p).mean()
    assert float(losses.uu_risk(g_p, torch.zeros(0), k)) == pytest.approx(float(expected))
