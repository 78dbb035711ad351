"""On-policy corpus rows: the policy's own answers to the training prompts, judged with the rest.

A reward trained only on a fixed corpus can miss the text the policy writes during
alignment: in the quickstart corpus every Do-Not-Answer/HarmBench prompt comes with a
templated refusal, so the classifier learns "that kind of prompt -> safe" and has never
seen a compliant answer to one (eval/results/quickstart/README.md). With
``data.on_policy.samples = k > 0`` the run samples ``k`` answers of ``align.policy`` to every
prompt of the training mix (``align.prompts``, the held-out prompts excluded as always), with
the sampling GRPO uses (``align.temperature``, ``align.max_completion_length``,
``align.prompts.system``), and appends them to the corpus the label stage judges. The
generations go through the eval generation cache (``eval.cache``), so a rerun does not
regenerate.

With ``rounds``, round r samples round r−1's policy on round r's prompt mix. Row ids are
``onpolicy-r<round>-<k>-<prompt id>``; ``source`` is ``on_policy-harmful`` or
``on_policy-benign`` (the prompt's side of the mix, not a label).

``data.on_policy.check_prompts = n > 0`` also checks every exported reward, before GRPO spends its
time, on the policy's own sampled answers to n development prompts (:func:`check_reward`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlaif_uu.align.monitor import monitor_prompts
from rlaif_uu.align.prompts import build_prompts
from rlaif_uu.assets import cache_dir
from rlaif_uu.data.io import Row
from rlaif_uu.eval.cache import GenerationCache, generate_cached
from rlaif_uu.eval.generation import build_generator, model_identity, settings_key
from rlaif_uu.label.cheap import RuleJudge
from rlaif_uu.reward.pairwise import sampled_accuracy

if TYPE_CHECKING:
    from rlaif_uu.align.config import PromptSettings
    from rlaif_uu.eval.generation import GenerationConfig, Generator
    from rlaif_uu.reward.pairwise import SampledGroup
    from rlaif_uu.run.config import RecipeConfig


def generation_config(cfg: RecipeConfig) -> GenerationConfig:
    """How the answers are sampled: ``eval.generation``'s backend settings with GRPO's sampling (seed 0; sample k adds k)."""
    return dataclasses.replace(cfg.eval.generation, temperature=cfg.align.temperature, seed=cfg.data.on_policy.seed,
                               max_new_tokens=cfg.align.max_completion_length, system_prompt=cfg.align.prompts.system)


def sample_answers(cfg: RecipeConfig, policy: str, texts: list[str], k: int, desc: str,
                   progress: bool = True) -> list[list[str]]:
    """``k`` answers of ``policy`` to every text, sampled as GRPO samples (:func:`generation_config`; sample j
    adds j to the seed) through the eval generation cache: ``answers[j][i]`` is sample j of text i.

    Raises:
        UserError: the policy cannot be loaded, or generation settings are invalid.
    """
    base = generation_config(cfg)
    identity = model_identity(policy, base)
    cache = GenerationCache(cfg.eval.cache or cache_dir() / "eval-generations.sqlite")
    generator: Generator | None = None
    answers: list[list[str]] = []
    try:
        for j in range(k):
            gen_cfg = dataclasses.replace(base, seed=base.seed + j)
            key = settings_key(identity, gen_cfg)
            cache.register(key, {"model": identity, **dataclasses.asdict(gen_cfg)})

            def make(gen_cfg: GenerationConfig = gen_cfg) -> Generator:
                nonlocal generator
                if generator is None:
                    generator = build_generator(policy, gen_cfg)
                generator.cfg = gen_cfg  # type: ignore[attr-defined]  # every backend reads it per call; only the seed changes
                return generator

            answers.append(generate_cached(make, texts, cache, key, base.batch_size, progress, f"{desc} {j + 1}/{k}").completions)
    finally:
        if generator is not None and hasattr(generator, "close"):
            generator.close()
        cache.close()
    return answers


def on_policy_rows(cfg: RecipeConfig, policy: str, prompts: PromptSettings, round_no: int = 1,
                   progress: bool = True) -> list[Row]:
    """``policy``'s answers to the training prompts of ``prompts`` (empty when ``data.on_policy.samples`` is 0).

    Raises:
        UserError: the policy cannot be loaded, or generation settings are invalid.
    """
    op = cfg.data.on_policy
    if op.samples <= 0:
        return []
    mix = build_prompts(prompts)
    items = sorted(((r["id"], r["kind"], r["prompt"][-1]["content"]) for r in mix), key=lambda t: t[0])
    answers = sample_answers(cfg, policy, [t for _, _, t in items], op.samples, "on-policy answers", progress)
    return [{"id": f"onpolicy-r{round_no}-{k}-{pid}", "prompt": text, "response": run[i], "source": f"on_policy-{kind}"}
            for k, run in enumerate(answers) for i, (pid, kind, text) in enumerate(items)]


def check_groups(cfg: RecipeConfig, policy: str, prompts: PromptSettings, n_prompts: int,
                 progress: bool = True) -> tuple[list[SampledGroup], list[str]]:
    """``policy``'s own sampled answers to ``n_prompts`` development prompts, grouped per prompt, and the prompt ids.

    Prompts are drawn as the alarm's monitor draws its own (training sources, neither in the
    training mix ``prompts`` nor in the eval hold-out; another seed); ``align.num_generations``
    answers each, sampled as GRPO samples them; the refusal rules say which answer is right
    (a refusal to a harmful prompt, an answer to a benign one).
    """
    from rlaif_uu.reward.pairwise import SampledGroup

    a = cfg.align
    monitor = dataclasses.replace(a.monitor, n_prompts=n_prompts, seed=a.monitor.seed + 1)
    dev = monitor_prompts(dataclasses.replace(a, prompts=prompts, monitor=monitor), build_prompts(prompts))
    texts = [d["prompt"][-1]["content"] for d in dev]
    answers = sample_answers(cfg, policy, texts, a.num_generations, "reward check answers", progress)
    rules = RuleJudge()
    groups = [SampledGroup(text, d["kind"], [run[i] for run in answers],
                           [rules.is_refusal(run[i]) == (d["kind"] == "harmful") for run in answers])
              for i, (text, d) in enumerate(zip(texts, dev))]
    return groups, [d["id"] for d in dev]


def check_reward(cfg: RecipeConfig, policy: str, prompts: PromptSettings, reward_dir: Path,
                 progress: bool = True) -> dict[str, Any]:
    """The exported reward on ``policy``'s own sampled answers to ``data.on_policy.check_prompts``
    development prompts (:func:`check_groups`, :func:`rlaif_uu.reward.pairwise.sampled_accuracy`),
    scored as GRPO sees it (``align.reward_output``).
    """
    import numpy as np

    from rlaif_uu.reward.safety_reward import SafetyReward

    groups, ids = check_groups(cfg, policy, prompts, cfg.data.on_policy.check_prompts, progress)
    reward = SafetyReward(reward_dir, output=cfg.align.reward_output)
    result = sampled_accuracy(lambda p, r: np.asarray(reward(p, r), dtype=float), groups, seed=cfg.data.on_policy.seed)
    return result | {"reward_output": cfg.align.reward_output, "policy": policy, "prompt_ids": ids}
