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
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rlaif_uu.data.io import Row

if TYPE_CHECKING:
    from rlaif_uu.align.config import PromptSettings
    from rlaif_uu.evaluation.generation import GenerationConfig, Generator
    from rlaif_uu.pipeline.recipe import RecipeConfig


@dataclass
class OnPolicySettings:
    """How many answers of the policy to each training prompt join the corpus (0: none)."""

    samples: int = 0  # answers per training prompt; sampled as GRPO samples (align.temperature, max_completion_length)
    seed: int = 0  # sample k uses seed + k


def generation_config(cfg: RecipeConfig) -> GenerationConfig:
    """How the answers are sampled: ``eval.generation``'s backend settings with GRPO's sampling (seed 0; sample k adds k)."""
    return dataclasses.replace(cfg.eval.generation, temperature=cfg.align.temperature, seed=cfg.data.on_policy.seed,
                               max_new_tokens=cfg.align.max_completion_length, system_prompt=cfg.align.prompts.system)


def on_policy_rows(cfg: RecipeConfig, policy: str, prompts: PromptSettings, round_no: int = 1,
                   progress: bool = True) -> list[Row]:
    """``policy``'s answers to the training prompts of ``prompts`` (empty when ``data.on_policy.samples`` is 0).

    Raises:
        UserError: the policy cannot be loaded, or generation settings are invalid.
    """
    from rlaif_uu.align.prompts import build_prompts
    from rlaif_uu.assets import cache_dir
    from rlaif_uu.evaluation.cache import GenerationCache, generate_cached
    from rlaif_uu.evaluation.generation import build_generator, model_identity, settings_key

    op = cfg.data.on_policy
    if op.samples <= 0:
        return []
    mix = build_prompts(prompts)
    items = sorted(((r["id"], r["kind"], r["prompt"][-1]["content"]) for r in mix), key=lambda t: t[0])
    texts = [t for _, _, t in items]
    base = generation_config(cfg)
    identity = model_identity(policy, base)
    cache = GenerationCache(cfg.eval.cache or cache_dir() / "eval-generations.sqlite")
    generator: Generator | None = None
    rows: list[Row] = []
    try:
        for k in range(op.samples):
            gen_cfg = dataclasses.replace(base, seed=base.seed + k)
            key = settings_key(identity, gen_cfg)
            cache.register(key, {"model": identity, **dataclasses.asdict(gen_cfg)})

            def make(gen_cfg: GenerationConfig = gen_cfg) -> Generator:
                nonlocal generator
                if generator is None:
                    generator = build_generator(policy, gen_cfg)
                generator.cfg = gen_cfg  # type: ignore[attr-defined]  # every backend reads it per call; only the seed changes
                return generator

            run = generate_cached(make, texts, cache, key, base.batch_size, progress, f"on-policy answers {k + 1}/{op.samples}")
            rows += [{"id": f"onpolicy-r{round_no}-{k}-{pid}", "prompt": text, "response": answer, "source": f"on_policy-{kind}"}
                     for (pid, kind, text), answer in zip(items, run.completions)]
    finally:
        if generator is not None and hasattr(generator, "close"):
            generator.close()
        cache.close()
    return rows
