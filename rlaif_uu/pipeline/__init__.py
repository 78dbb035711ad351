"""End-to-end recipes: `rlaif-uu run`."""
