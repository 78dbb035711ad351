"""End-to-end recipes (``rlaif-uu run``): label, [gold], refine, reward, eval, align, eval, compare -- in rounds.

Python API::

    from rlaif_uu.config import load_config
    from rlaif_uu.run import RecipeConfig, run_recipe
    run_recipe(load_config(RecipeConfig, "recipes/quickstart.yaml", overrides=["align.steps=10"]))
"""

from __future__ import annotations

from rlaif_uu.lazy import lazy_exports

# The stages of a one-round run, in order (with `rounds: K`, each round's stages live under round-<r>/;
# rlaif_uu.run.stages builds the list).
STAGES = ("label", "refine", "reward", "eval_before", "align", "eval_after", "compare")

_EXPORTS = {"RecipeConfig": "config", "run_recipe": "runner"}
__all__ = ["STAGES", "RecipeConfig", "run_recipe"]
__getattr__ = lazy_exports(__name__, _EXPORTS)
