"""``rlaif-uu refine active``: the resumable labelling-queue workflow around :mod:`rlaif_uu.refine.active`.

Each run reads the queue a person has been filling (``--queue FILE``, JSONL or CSV, one row per
question with an empty ``human_label``), checks it, and then either

* stops, when queued rows still have no answer (nothing else is written);
* retrains on the answers and appends the next batch of questions (until ``--budget`` rows are
  asked), also written as Label Studio tasks (``<queue>.labelstudio.json`` with the labelling
  config ``<queue>.labelstudio.xml``); or
* once the budget is answered, writes the refined output folder (``--out``).

``<queue>.state.json`` records which ids were queued in which round and the input they came
from, so an edited queue (changed or deleted ids, duplicates, unknown labels) is refused with the
line at fault. ``--simulate-from FILE`` answers every question from FILE's ``gold_label`` (tests,
benchmarks); ``active.answers=EXPORT.json`` merges a Label Studio export into the queue.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from rlaif_uu.assets import resolve_model
from rlaif_uu.data.io import Row, _iter_rows, read_records, write_json, write_records
from rlaif_uu.data.schema import (
    ACCEPTED_LABELS,
    LABEL_NAMES,
    classifier_text,
    parse_label,
)
from rlaif_uu.errors import UserError
from rlaif_uu.refine.active import (
    QueryWeights,
    check_budget,
    query_scores,
    select,
    train_with_answers,
)
from rlaif_uu.refine.classify import RefinerOutput, sigmoid
from rlaif_uu.refine.config import REFINE_COLUMNS, RefineConfig, build_backbone

LS_CONFIG = """<View>
  <Header value="Is the assistant's response harmful?"/>
  <Text name="prompt" value="$prompt"/>
  <Text name="response" value="$response"/>
  <Choices name="human_label" toName="response" choice="single" required="true">
    <Choice value="harmful"/>
    <Choice value="safe"/>
  </Choices>
</View>
"""


def sidecar(queue: Path, suffix: str) -> Path:
    """``queue.jsonl`` → ``queue.jsonl<suffix>`` (state, Label Studio files)."""
    return queue.with_name(queue.name + suffix)


def _fingerprint(rows: list[Row]) -> str:
    return hashlib.sha256("\x00".join(r["id"] for r in rows).encode()).hexdigest()[:16]


def load_state(queue: Path, rows: list[Row]) -> dict[str, Any]:
    """The queue's state, a fresh one when neither file exists; refuses a queue without state or for another input."""
    state_file = sidecar(queue, ".state.json")
    if not state_file.exists():
        if queue.exists():
            raise UserError(f"{queue}: no {state_file.name} beside it, so rlaif-uu did not make this queue; "
                            "pass a new --queue path (the file is created) or restore the state file")
        return {"input_fingerprint": _fingerprint(rows), "n_rows": len(rows), "rounds": [], "log": []}
    state = json.loads(state_file.read_text())
    if state["input_fingerprint"] != _fingerprint(rows):
        raise UserError(f"{queue}: this queue was made for another input ({state['n_rows']} rows); "
                        "pass the original --input or start a new --queue")
    if not queue.exists():
        raise UserError(f"{queue}: file not found but {state_file.name} exists; restore the queue file or delete the state to start over")
    return state


def read_answers(queue: Path, state: dict[str, Any], position: dict[str, int]) -> dict[int, int | None]:
    """Queued row position → the person's label (``None`` while empty), checked against the state.

    Raises:
        UserError: naming the line: an id not in the input or never queued, a duplicate, an unknown
            label, or a queued id whose line is gone.
    """
    queued = {i: r for r, ids in enumerate(state["rounds"], start=1) for i in ids}
    answers: dict[int, int | None] = {}
    lines: dict[str, str] = {}
    for index, (line, raw) in enumerate(_iter_rows(queue)):
        where = f"{queue}:{line}" if line is not None else f"{queue} (row {index + 1})"
        row_id = str(raw.get("id") or "")
        if row_id in lines:
            raise UserError(f"{where}: duplicate id {row_id!r} (also at {lines[row_id]}); keep one line per queued row")
        lines[row_id] = where
        if row_id not in position:
            raise UserError(f"{where}: id {row_id!r} is not a row of the input; restore the id this line had")
        if row_id not in queued:
            raise UserError(f"{where}: id {row_id!r} was never queued ({sidecar(queue, '.state.json').name} lists the queued ids); "
                            "restore the id this line had")
        try:
            label = parse_label(raw.get("human_label"))
        except ValueError:
            raise UserError(f"{where}: field 'human_label': unknown label {raw.get('human_label')!r}; "
                            f"write {ACCEPTED_LABELS}, or leave it empty") from None
        answers[position[row_id]] = label
    gone = [i for i in queued if i not in lines]
    if gone:
        raise UserError(f"{queue}: queued id {gone[0]!r} (round {queued[gone[0]]}) has no line; "
                        f"restore the {len(gone)} deleted line(s) (their ids are in {sidecar(queue, '.state.json').name})")
    return answers


def read_labelstudio(path: str) -> dict[str, int]:
    """Row id → label from a Label Studio JSON export of the tasks this module wrote (last non-cancelled annotation)."""
    try:
        tasks = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not a readable Label Studio JSON export ({exc})") from None
    out: dict[str, int] = {}
    for n, task in enumerate(tasks if isinstance(tasks, list) else [], start=1):
        row_id = str(task.get("data", {}).get("row_id", ""))
        for ann in reversed(task.get("annotations", [])):
            choices = [c for res in ann.get("result", []) for c in res.get("value", {}).get("choices", [])]
            if ann.get("was_cancelled") or not choices:
                continue
            try:
                label = parse_label(choices[0])
            except ValueError:
                raise UserError(f"{path}: task {n} (row_id {row_id!r}): unknown choice {choices[0]!r}; expected harmful or safe") from None
            if label is not None:
                out[row_id] = label
            break
    return out


def _write_queue(queue: Path, rows: list[Row], state: dict[str, Any], answers: dict[int, int | None],
                 position: dict[str, int], extra: dict[int, dict[str, Any]]) -> None:
    entries, tasks = [], []
    for r, ids in enumerate(state["rounds"], start=1):
        for row_id in ids:
            i = position[row_id]
            ans = answers.get(i)
            entries.append({"id": row_id, "round": r, "prompt": rows[i]["prompt"], "response": rows[i]["response"],
                            "judge_label": LABEL_NAMES[rows[i]["judge_label"]], **extra.get(i, {}),
                            "human_label": None if ans is None else LABEL_NAMES[ans]})
            if ans is None:
                tasks.append({"id": len(tasks) + 1, "data": {"row_id": row_id, "prompt": rows[i]["prompt"],
                                                              "response": rows[i]["response"], "judge_label": LABEL_NAMES[rows[i]["judge_label"]]}})
    old = {e["id"]: e for e in (_iter_rows_safe(queue))}
    for e in entries:  # keep the scores written when a row was queued
        for key in ("model_p_harmful", "query_score"):
            if key not in e and key in old.get(e["id"], {}):
                e[key] = old[e["id"]][key]
    write_records(queue, entries)
    write_json(sidecar(queue, ".state.json"), state)
    write_json(sidecar(queue, ".labelstudio.json"), tasks)
    sidecar(queue, ".labelstudio.xml").write_text(LS_CONFIG)


def _iter_rows_safe(path: Path) -> list[Row]:
    return [r for _, r in _iter_rows(path)] if path.exists() else []


def run_active_queue(cfg: RefineConfig) -> Path | None:
    """One resumable step (or, with ``simulate_from``, every step) of the queue workflow; the output folder when done."""
    from rlaif_uu.refine.methods import (
        check_out,
        gold_summary,
        judge_columns,
        optional_gold,
        write_output,
    )

    ac = cfg.active
    if not ac.queue:
        raise UserError("--method active needs --queue FILE (the labelling queue, .jsonl or .csv; created when missing)")
    queue = Path(ac.queue)
    rows = read_records(cfg.input, required=REFINE_COLUMNS)
    position = {r["id"]: i for i, r in enumerate(rows)}
    judge = np.array([r["judge_label"] for r in rows])
    gold = optional_gold(rows, cfg, judge)
    pool = np.setdiff1d(np.arange(len(rows)), gold.index if gold else [])
    check_budget(ac.budget, ac.batch, len(pool))
    check_out(cfg)
    state = load_state(queue, rows)
    answers = read_answers(queue, state, position) if queue.exists() else {}
    if ac.answers:
        for row_id, label in read_labelstudio(ac.answers).items():
            if row_id not in position or position[row_id] not in answers:
                raise UserError(f"{ac.answers}: row_id {row_id!r} is not in the queue {queue}; import the export of this queue's tasks")
            answers[position[row_id]] = label
    oracle: dict[str, int] = {}
    if ac.simulate_from:
        oracle = {r["id"]: r["gold_label"] for r in read_records(ac.simulate_from, required=("gold_label",))}
    names = [k[: -len("_label")] for k in rows[0] if k.endswith("_label") and k[: -len("_label")] not in ("judge", "gold", "refined", "human")]
    votes = judge_columns(rows, names, str(cfg.input))[1] if len(names) >= 2 else None
    weights = QueryWeights(ac.w_uncertainty, ac.w_model_judge, ac.w_judges)
    backbone = build_backbone(cfg.backbone)
    resolve_model(backbone.model_name)
    texts = [classifier_text(r["prompt"], r["response"]) for r in rows]
    extra: dict[int, dict[str, Any]] = {}
    while True:
        for i in [i for i, a in answers.items() if a is None and rows[i]["id"] in oracle]:
            answers[i] = oracle[rows[i]["id"]]
        waiting = [i for i, a in answers.items() if a is None]
        if waiting:
            if ac.simulate_from:
                raise UserError(f"{ac.simulate_from}: no gold_label for queued id {rows[waiting[0]]['id']!r}; "
                                "the simulated annotator needs a label for every row it may be asked about")
            _write_queue(queue, rows, state, answers, position, extra)
            print(f"{queue}: {len(waiting)} of {len(answers)} queued rows still need a human_label "
                  "(harmful or safe); fill them in (or import "
                  f"{sidecar(queue, '.labelstudio.json').name} into Label Studio) and rerun this command")
            return None
        human = {i: int(a) for i, a in answers.items() if a is not None}
        backbone.prepare(texts)
        r = len(state["rounds"])
        g, model = train_with_answers(backbone, texts, judge, pool, human, ac.human_weight, cfg.seed + r)
        entry = {"round": r, "labels_spent": len(human), "human_flips_judge": int(sum(judge[i] != y for i, y in human.items()))}
        if gold is not None:
            entry["gold_accuracy"] = gold.accuracy((g > 0).astype(int)).value
        if not state["log"] or state["log"][-1]["labels_spent"] != len(human):
            state["log"].append(entry)
        if len(human) >= ac.budget:
            break
        open_rows = np.setdiff1d(pool, np.array(sorted(human), dtype=int))
        scores = query_scores(g, judge, votes, weights)
        ask = select(scores, open_rows, min(ac.batch, ac.budget - len(human)), ac.strategy, cfg.seed + r + 1, judge)
        state["rounds"].append([rows[i]["id"] for i in ask])
        p = sigmoid(g)
        for i in ask:
            answers[int(i)] = None
            extra[int(i)] = {"model_p_harmful": round(float(p[i]), 4), "query_score": round(float(scores[i]), 4)}
        if not ac.simulate_from:
            _write_queue(queue, rows, state, answers, position, extra)
            print(f"{queue}: round {len(state['rounds'])}: queued {len(ask)} rows ({len(human)} of {ac.budget} answered so far); "
                  "fill in human_label and rerun this command")
            return None
    _write_queue(queue, rows, state, answers, position, extra)
    labels = (g > 0).astype(int)
    for i, y in human.items():
        labels[i] = y
    result = RefinerOutput(labels, g, model)
    history = {"method": "active", "n_rows": len(rows), "flipped": int((labels != judge).sum()), "labels_spent": len(human),
               **gold_summary(gold, labels, judge), "rounds": state["log"], "queue": str(queue)}
    return write_output(cfg, rows, result, backbone, history)
