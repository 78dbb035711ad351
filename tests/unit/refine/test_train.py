"""The optimiser schedule of :func:`rlaif_uu.refine.train.fit`."""

from __future__ import annotations

import pytest
import torch

from rlaif_uu.refine.train import _schedule


def test_linear_warmup_then_decay_to_zero() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = _schedule(opt, steps=20, warmup_ratio=0.1)
    assert sched is not None
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.5) and lrs[1] == pytest.approx(1.0)  # 2 warm-up steps
    assert all(a > b for a, b in zip(lrs[1:], lrs[2:]))  # then strictly decreasing
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0)


def test_no_warmup_ratio_keeps_the_lr_constant() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.3)
    assert _schedule(opt, steps=10, warmup_ratio=None) is None
