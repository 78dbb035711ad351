"""``algorithm=ppo`` in the main environment (TRL 1.16, no PPO) and PPO's text-level reward adapter.

PPO itself trains in the PPO tier (``bash scripts/tier_ppo.sh``, ``tests/ppo``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from rlaif_uu.align.config import AlignConfig
from rlaif_uu.align.ppo import (
    TextLevelReward,
    choose_pad_token,
    token_ids,
    weighted_reward,
)
from rlaif_uu.align.run import run_align
from rlaif_uu.config import load_config
from rlaif_uu.errors import UserError
from rlaif_uu.reward import SafetyReward
from tests.tiny_models import COMPLY, HARMFUL_PROMPTS, REFUSE, align_setup

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return align_setup(tmp_path_factory.mktemp("ppo-main"))


def test_missing_trl_ppo_is_one_clear_error_before_any_output(tiny: dict[str, Path], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "trl.experimental.ppo", None)  # TRL >= 1.13 has no PPO (the main env has 1.16)
    cfg = load_config(AlignConfig, None, {"policy": str(tiny["policy"]), "reward": str(tiny["reward"]),
                                          "out": str(tmp_path / "out"), "algorithm": "ppo"},
                      [f"prompts.harmful={tiny['harm']}", "prompts.n_harmful=4", "prompts.n_benign=0"])
    with pytest.raises(UserError, match=r"trl==1\.12\.0.*scripts/tier_ppo\.sh") as err:
        run_align(cfg)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_text_level_reward_scores_decoded_text_with_the_reward_tokenizer(tiny: dict[str, Path]) -> None:
    """Policy ids (SmolLM2 vocabulary) -> decoded text -> the BERT reward: what TRL 1.12 reads at any position."""
    tok = AutoTokenizer.from_pretrained(tiny["policy"], padding_side="left")
    prompts = [[{"role": "user", "content": p}] for p in HARMFUL_PROMPTS[:2]]
    ids = [token_ids(tok.apply_chat_template(p, add_generation_prompt=True, tokenize=True)) for p in prompts]
    assert tok.pad_token_id == tok.eos_token_id and tok.eos_token_id in ids[0]  # SmolLM2 pads with <|im_end|>
    assert not choose_pad_token(tok, {i for x in ids for i in x})
    assert tok.pad_token_id != tok.eos_token_id and tok.pad_token_id not in ids[0]
    safety = SafetyReward(tiny["reward"])
    reward = TextLevelReward(tok, {tuple(x): p for x, p in zip(ids, prompts)}, weighted_reward([safety], [2.0]))
    answers = [COMPLY, REFUSE]
    queries = tok.pad({"input_ids": ids}, return_tensors="pt")
    responses = [tok(a, add_special_tokens=False)["input_ids"] + [tok.eos_token_id, tok.pad_token_id] for a in answers]
    width = max(map(len, responses))
    resp = torch.tensor([r + [tok.pad_token_id] * (width - len(r)) for r in responses])
    full = torch.cat([queries["input_ids"], resp], 1)
    mask = full != tok.pad_token_id
    got = reward(full.masked_fill(~mask, 0), mask)  # TRL zeroes the pad ids before the forward pass
    expected = 2.0 * torch.tensor(safety(prompts, answers))
    assert torch.allclose(got, expected, atol=1e-5) and got[1] > got[0]
