"""The frozen probe's heads: the request-aware factored head's identity, its training, save and reload."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rlaif_uu.errors import UserError
from rlaif_uu.refine.backbones import FrozenEncoder
from rlaif_uu.refine.classify import train_on_labels
from rlaif_uu.refine.heads import FactoredHead
from rlaif_uu.refine.train import predict
from tests.unit.refine.test_loop import SyntheticEncoder as Features  # the real head and training over given features


def test_factored_logit_is_the_log_odds_of_the_product() -> None:
    torch.manual_seed(0)
    head = FactoredHead(torch.zeros(6), torch.ones(6), hidden=0)
    x = torch.randn(50, 6) * 4
    a = head.request(x[:, :3])
    b = head.answer(x[:, 3:])
    p = torch.sigmoid(a) * torch.sigmoid(b)
    assert torch.allclose(head(x), torch.log(p / (1 - p)), atol=1e-4)
    with torch.no_grad():
        for factor in (head.request, head.answer):
            factor.net.weight.fill_(1.0)
            factor.net.bias.zero_()
    extreme = head(torch.full((1, 6), 1e4))  # both factors saturate at 1: finite, very harmful
    assert torch.isfinite(extreme).all() and extreme.item() > 10


def test_within_one_request_the_order_of_answers_is_the_same_for_every_request() -> None:
    torch.manual_seed(1)
    head = FactoredHead(torch.zeros(8), torch.ones(8), hidden=16).eval()
    answers = torch.randn(20, 4)
    orders = [torch.argsort(head(torch.cat([req.expand(20, 4), answers], dim=1)).detach()) for req in torch.randn(5, 1, 4)]
    assert all(torch.equal(orders[0], o) for o in orders[1:])


def _and_data(n: int = 800, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """label = harmful request AND a complying answer, each read from its own half of the features."""
    rng = np.random.default_rng(seed)
    harmful, complies = rng.random(n) < 0.5, rng.random(n) < 0.5
    x = rng.normal(size=(n, 8))
    x[:, 0] += 5 * harmful
    x[:, 4] += 5 * complies
    return x, (harmful & complies).astype(int)


@pytest.mark.parametrize("head", ["factored", "factored_mlp"])
def test_factored_head_learns_the_request_aware_label(head: str) -> None:
    x, y = _and_data()
    backbone = Features(x, head=head, segments=True)
    backbone.prepare([])
    fit = train_on_labels(backbone, np.arange(600), y, seed=0)
    held = np.arange(600, 800)
    assert np.mean((predict(backbone, fit.model, held) > 0) == y[held]) > 0.95


def test_save_and_reload_give_the_same_scores(tmp_path) -> None:
    x, y = _and_data(200)
    backbone = Features(x, head="factored", segments=True)
    backbone.prepare([])
    fit = train_on_labels(backbone, np.arange(200), y, seed=0)
    backbone.save(fit.model, str(tmp_path))
    info = json.loads((tmp_path / "classifier.json").read_text())
    again = Features(x, head=info["head"], segments=info["segments"])  # as rlaif_uu.reward.classifier reloads it
    again.prepare([])
    model = again.new_model(0)
    model.load_state_dict(load_file(str(tmp_path / "head.safetensors")))
    rows = np.arange(200)
    assert np.allclose(predict(again, model, rows), predict(backbone, fit.model, rows), atol=1e-5)


def test_head_choices_are_checked() -> None:
    with pytest.raises(UserError, match="head 'deep' is unknown; use one of linear, mlp, factored, factored_mlp"):
        FrozenEncoder(head="deep")
    with pytest.raises(UserError, match="needs segments=true"):
        FrozenEncoder(head="factored", segments=False)
