"""End-to-end recipes: `rlaif-uu run`."""

# The stages of a one-round run, in order (with `rounds: K`, each round's stages live under round-<r>/;
# rlaif_uu.pipeline.stages builds the list).
STAGES = ("label", "refine", "reward", "eval_before", "align", "eval_after", "compare")
