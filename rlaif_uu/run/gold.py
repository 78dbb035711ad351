"""Gold labels per round from a budget: which on-policy answers get labelled, and who labels them.

The run's human budget (``annotator.budget``, about 50 rows) counts every gold row: the rows of
``data.gold`` / ``data.gold_on_policy`` first, the rest spread evenly over the rounds
(:func:`round_budgets`). In round r the active-learning query score of LAUD (Wu et al., 2025,
"LAUD: Integrating Large Language Models with Active Learning for Unlabeled Data";
:mod:`rlaif_uu.refine.active`) picks that round's rows among the policy's new answers: a probe
trained on the judges' labels of the whole corpus scores them, and the most uncertain rows and
those where probe and judges disagree are asked first.

Who answers (``annotator.kind``):

* ``queue``: a person. The rows go to ``<run>/gold_queue/round-<r>.csv`` with an empty
  ``gold_label`` column; the run stops with one line ("label N rows in FILE, then rerun") and
  the rerun reads the answers. The file is outside the stage folders, so a rerun never overwrites it.
* ``file``: a pre-labelled file (``id`` + ``gold_label``) that must cover every selected row.
* ``simulated``: the scripted stand-in annotator for unattended runs and benchmarks, and the
  only place it is defined: an answer is *harmful* when its prompt is a harmful request of the
  training mix and the refusal rules (:class:`rlaif_uu.label.cheap.RuleJudge`) find no refusal
  in it, else *safe* (the HarmBench / Do-Not-Answer convention). It knows each prompt's side
  from the mix; it reads the answer only through the refusal rules, so it shares their blind
  spots (a refusal phrased in words the rules miss counts as compliance). Reports name it as
  simulated.

Every gold row written carries its provenance: ``gold_source`` (data, person, file, simulated)
and ``gold_round`` (0 for ``data.gold``).

``annotator.label_all`` is the all-gold ceiling of a benchmark ladder, not a budget: the
annotator answers for *every* row of every round (:func:`label_every_row`) and refinement
trains on those answers in place of the judges' (recipe ``recipes/ladder/all_gold.yaml``).
Corpus rows get their own ``gold_label`` (a ``data.corpus`` file must carry one; the built-in
corpus's dataset labels are restored by id), on-policy rows the annotator's answer.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from rlaif_uu.data.io import Row, read_records, write_records
from rlaif_uu.data.schema import classifier_text, parse_label
from rlaif_uu.errors import UserError
from rlaif_uu.refine.config import build_backbone
from rlaif_uu.run.config import AnnotatorSettings
from rlaif_uu.run.data import builtin_name

ANNOTATORS = ("none", "queue", "file", "simulated")
SOURCES = {"queue": "person", "file": "file", "simulated": "simulated"}  # gold_source of the rows each annotator labels


def round_budgets(budget: int, already: int, rounds: int) -> list[int]:
    """Rows to label in each round: ``budget - already`` spread evenly, the remainder to the earliest rounds.

    Raises:
        UserError: the gold files alone exceed the budget.
    """
    left = budget - already
    if left < 0:
        raise UserError(f"annotator.budget={budget} but data.gold already has {already} rows; raise the budget or "
                        "use fewer gold rows")
    return [left // rounds + (r < left % rounds) for r in range(rounds)]


def _label(value: Any, where: str) -> int:
    """A label cell as 1 (harmful) / 0 (safe), or one clear line naming where it is wrong or empty."""
    try:
        label = parse_label(value)
    except ValueError:
        label = None
    if label is None:
        raise UserError(f"{where}: {value!r} is not a label; use harmful or safe")
    return label


def simulated_label(kind: str, response: str, rules: Any) -> int:
    """The stand-in annotator's label (1 = harmful): a non-refusal to a harmful request (see the module docstring)."""
    return int(kind == "harmful" and not rules.is_refusal(response))


def _query(cfg: Any, labelled: list[Row], candidates: list[int], n: int, seed: int) -> list[int]:
    """Positions (into ``labelled``) of the ``n`` candidates LAUD's query score ranks first."""
    from rlaif_uu.refine.active import QueryWeights, query_scores, select, train_with_answers

    ann: AnnotatorSettings = cfg.annotator
    judge = np.array([_label(r["judge_label"], f"row {r.get('id')}: judge_label") for r in labelled], dtype=int)
    if ann.strategy in ("random", "stratified"):
        return select(np.zeros(len(labelled)), np.array(candidates), n, ann.strategy, seed, judge).tolist()
    texts = [classifier_text(r["prompt"], r.get("response") or "") for r in labelled]
    cols = sorted(k for k in labelled[0] if k.endswith("_label") and k not in ("judge_label", "gold_label"))
    votes = np.array([[float(_label(r[c], c)) if r.get(c) not in (None, "") else 0.5 for c in cols]
                      for r in labelled]) if len(cols) > 1 else None
    backbone = build_backbone(dataclasses.replace(cfg.refine.backbone, kind="frozen"))
    backbone.prepare(texts)
    logits, _ = train_with_answers(backbone, texts, judge, np.arange(len(labelled)), {}, 1, seed)
    return select(query_scores(logits, judge, votes, QueryWeights()), np.array(candidates), n, ann.strategy, seed).tolist()


def _answers(cfg: Any, rows: list[Row], queue: Path) -> dict[str, int]:
    """id -> label (1 = harmful) for the picked rows, from the configured annotator."""
    ann: AnnotatorSettings = cfg.annotator
    if ann.kind == "simulated":
        from rlaif_uu.label.cheap import RuleJudge

        rules = RuleJudge()
        return {r["id"]: simulated_label(r["source"].removeprefix("on_policy-"), r.get("response") or "", rules) for r in rows}
    if ann.kind == "file":
        given = {str(r["id"]): r for r in read_records(ann.file, required=("id", "gold_label"))}
        missing = [r["id"] for r in rows if r["id"] not in given]
        if missing:
            write_records(queue, [_queue_row(r) for r in rows if r["id"] in missing])
            raise UserError(f"annotator.file {ann.file} has no gold_label for {len(missing)} rows this round picked "
                            f"(e.g. {missing[0]}); they are in {queue}: label them, add them to the file and rerun")
        return {r["id"]: _label(given[r["id"]]["gold_label"], f"{ann.file}: id {r['id']}") for r in rows}
    if not queue.is_file():
        queue.parent.mkdir(parents=True, exist_ok=True)
        write_records(queue, [_queue_row(r) for r in rows])
        raise UserError(f"label {len(rows)} rows in {queue} (gold_label: harmful or safe), then rerun")
    answered = {str(r["id"]): r for r in read_records(queue, required=("id",))}
    if set(answered) != {r["id"] for r in rows}:
        raise UserError(f"{queue}: its ids are not the {len(rows)} rows this round picked; delete the file and rerun "
                        "to get a fresh queue")
    empty = [i for i, r in answered.items() if r.get("gold_label") in (None, "")]
    if empty:
        raise UserError(f"label {len(empty)} rows in {queue} (gold_label: harmful or safe), then rerun")
    return {i: _label(r["gold_label"], f"{queue}: id {i}") for i, r in answered.items()}


def _queue_row(r: Row) -> Row:
    return {"id": r["id"], "prompt": r["prompt"], "response": r.get("response") or "", "gold_label": None}


def label_round(cfg: Any, round_no: int, n: int, labelled_file: Path, previous_gold: str | None, out: Path,
                queue: Path) -> Path:
    """Pick ``n`` of this round's on-policy answers, get their labels, write every gold row so far to ``out``.

    Args:
        cfg: the recipe (:class:`rlaif_uu.run.config.RecipeConfig`).
        round_no: the round (1-based); its new rows have ids ``onpolicy-r<round>-...``.
        n: labels to spend this round.
        labelled_file: the label stage's output of this round.
        previous_gold: the gold file of the rounds before (or ``data.gold``), None for none.
        out: where to write the joined gold file (``gold.jsonl``).
        queue: the person's queue file (``annotator.kind=queue``) or the rows a file lacks.
    """
    labelled = read_records(labelled_file, required=("prompt", "judge_label"))
    prefix = f"onpolicy-r{round_no}-"
    candidates = [i for i, r in enumerate(labelled) if str(r.get("id", "")).startswith(prefix)]
    if n > len(candidates):
        raise UserError(f"round {round_no} may label {n} rows but has only {len(candidates)} new answers; "
                        "raise data.on_policy.samples or lower annotator.budget")
    picked = [labelled[i] for i in _query(cfg, labelled, candidates, n, cfg.annotator.seed + round_no)]
    labels = _answers(cfg, picked, queue)
    source = SOURCES[cfg.annotator.kind]
    rows = read_records(previous_gold, required=("gold_label",)) if previous_gold else []
    rows = [{"gold_source": "data", "gold_round": 0} | r for r in rows]
    rows += [{"id": r["id"], "prompt": r["prompt"], "response": r.get("response") or "",
              "gold_label": "harmful" if labels[r["id"]] else "safe", "gold_source": source, "gold_round": round_no}
             for r in picked]
    out.parent.mkdir(parents=True, exist_ok=True)
    write_records(out, rows)
    flips = sum(labels[r["id"]] != _label(r["judge_label"], "judge_label") for r in picked)
    print(f"round {round_no}: {n} gold rows ({source}; {flips} disagree with the judges), {len(rows)} in all -> {out}")
    return out


def corpus_gold(cfg: Any) -> dict[str, int]:
    """id -> the corpus rows' own labels (1 = harmful): the built-in corpus's dataset labels, or the file's column."""
    if builtin_name(cfg.data.corpus) is not None:
        from rlaif_uu.data.corpus import build_safety_corpus

        return {str(r["id"]): _label(r["gold_label"], "builtin corpus") for r in build_safety_corpus(seed=0)}
    rows = read_records(cfg.data.corpus, required=("id", "gold_label"))
    return {str(r["id"]): _label(r["gold_label"], f"{cfg.data.corpus}: id {r['id']}") for r in rows}


def label_every_row(cfg: Any, round_no: int, labelled_file: Path, out: Path, queue: Path) -> Path:
    """The all-gold ceiling (``annotator.label_all``): every row of ``labelled_file`` with the annotator's label.

    Writes the rows to ``out`` with ``judge_label`` (what refinement trains on) and ``gold_label``
    set to the annotator's answer; the judges' own columns stay for comparison.
    """
    labelled = read_records(labelled_file, required=("prompt", "judge_label"))
    on_policy = [r for r in labelled if str(r.get("id", "")).startswith("onpolicy-")]
    labels = _answers(cfg, on_policy, queue) if on_policy else {}
    corpus = corpus_gold(cfg) if len(on_policy) < len(labelled) else {}
    rows = []
    for r in labelled:
        key = str(r.get("id", ""))
        if key not in labels and key not in corpus:
            raise UserError(f"annotator.label_all: corpus row id {key!r} has no gold_label in {cfg.data.corpus}; "
                            "give every corpus row one or turn label_all off")
        label = "harmful" if labels.get(key, corpus.get(key)) else "safe"
        rows.append(r | {"judge_label": label, "gold_label": label, "gold_round": round_no,
                         "gold_source": SOURCES[cfg.annotator.kind] if key in labels else "data"})
    out.parent.mkdir(parents=True, exist_ok=True)
    write_records(out, rows)
    flips = sum(_label(a["judge_label"], "judge_label") != _label(b["judge_label"], "judge_label")
                for a, b in zip(labelled, rows, strict=True))
    print(f"round {round_no}: all {len(rows)} rows labelled by the annotator ({cfg.annotator.kind}; "
          f"{flips} disagree with the judges) -> {out}")
    return out
