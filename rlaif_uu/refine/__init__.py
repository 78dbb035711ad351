"""The refine stage: noisy judge labels + a few gold labels -> refined labels and a classifier.

Python API::

    from rlaif_uu.refine import RefineConfig, backbone_config, run_refine
    run_refine(RefineConfig(input="labelled.jsonl", gold="gold.jsonl", out="runs/refine",
                            backbone=backbone_config("encoder", pooling="cls")))
"""

from __future__ import annotations

from rlaif_uu.lazy import lazy_exports

_EXPORTS = {"RefineConfig": "config", "BackboneConfig": "config", "backbone_config": "config", "run_refine": "run"}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
