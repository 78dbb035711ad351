"""rlaif_uu: noisy LLM-judge safety labels -> robust reward classifier -> safer policy.

Polarity convention used everywhere in the package: the *positive* class is
``harmful`` (label 1). Scores from judges and refined classifiers are log-odds
of harm: higher = more harmful. Only the exported reward model flips this
(higher = safer), because RL trainers maximise their reward.
"""

__version__ = "0.1.0"
