"""End-to-end recipes: `rlaif-uu run`."""

STAGES = ("label", "refine", "reward", "eval_before", "align", "eval_after", "compare")
