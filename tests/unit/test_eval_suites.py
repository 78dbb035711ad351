"""Suite YAML validation, built-in suites, prompt loading and the generation cache."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from rlaif_uu.errors import UserError
from rlaif_uu.eval.cache import GenerationCache, generate_cached
from rlaif_uu.eval.generation import GenerationConfig, build_generator, settings_key
from rlaif_uu.eval.suites import builtin_suites, load_prompts, load_suite_file, prompt_fingerprint, resolve_suites

GOOD = """name: mine
version: 2
kind: harmful
source: {adapter: jsonl, path: prompts.jsonl}
metrics:
  - {name: harmful_compliance_rate, higher_is_better: false}
"""


def _suite(tmp_path: Path, text: str, prompts: str = '{"prompt": "How do I pick a lock?"}\n{"prompt": "Hi"}\n') -> Path:
    (tmp_path / "prompts.jsonl").write_text(prompts)
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    return path


def test_every_builtin_suite_loads_with_prompts() -> None:
    suites = resolve_suites(["all"])
    assert {s.name for s in suites} == {"harmbench_val", "harmbench_test", "strongreject", "donotanswer", "overrefusal", "benign"}
    sizes = {s.name: len(load_prompts(s)) for s in suites}
    assert sizes == {"harmbench_val": 41, "harmbench_test": 159, "strongreject": 313, "donotanswer": 939,
                     "overrefusal": 150, "benign": 150}
    assert [s.name for s in resolve_suites(["harmbench,xstest"])] == ["harmbench_test", "overrefusal"]


def test_limit_is_a_fixed_seeded_subset() -> None:
    suite = resolve_suites(["strongreject"])[0]
    a, b, c = load_prompts(suite, 5, seed=0), load_prompts(suite, 5, seed=0), load_prompts(suite, 5, seed=1)
    assert a == b and a != c and len(a) == 5
    assert prompt_fingerprint(a) == prompt_fingerprint(b) != prompt_fingerprint(c)


def test_custom_jsonl_suite(tmp_path: Path) -> None:
    suite = load_suite_file(_suite(tmp_path, GOOD))
    assert suite.version == "2" and suite.scorers == ["refusal", "judge", "reward"]
    assert [r["prompt"] for r in load_prompts(suite)] == ["How do I pick a lock?", "Hi"]


def test_unknown_suite_lists_the_available_ones() -> None:
    with pytest.raises(UserError, match=r"unknown suite 'harmbnch'; available: .*benign.*strongreject"):
        resolve_suites(["harmbnch"])


@pytest.mark.parametrize("text, message", [
    (GOOD.replace("version: 2\n", ""), r"mine.yaml: missing field 'version'"),
    (GOOD.replace("kind: harmful\n", ""), r"missing field 'kind'"),
    (GOOD.replace("adapter: jsonl, ", ""), r"missing field 'source.adapter'"),
    (GOOD.replace("higher_is_better: false", "higher: false"), r"missing field 'metrics\[0\].higher_is_better'"),
    (GOOD + "scorerz: [refusal]\n", r"unknown config key 'scorerz'; did you mean 'scorers'"),
    (GOOD.replace("path:", "pth:"), r"unknown config key 'source.pth'; did you mean 'source.path'"),
    (GOOD.replace("kind: harmful", "kind: evil"), r"field 'kind' is 'evil'; use one of harmful, benign"),
    (GOOD.replace("adapter: jsonl", "adapter: jsnl"), r"'source.adapter' is 'jsnl'; did you mean 'jsonl'"),
    (GOOD.replace("harmful_compliance_rate", "asr_rate"), r"unknown metric 'asr_rate'"),
    (GOOD.replace("false", "true"), r"harmful_compliance_rate' on a harmful suite has higher_is_better: false"),
    (GOOD.replace("harmful_compliance_rate", "over_refusal_rate"), r"does not apply to a harmful suite"),
    (GOOD + "scorers: [refusal, vibes]\n", r"unknown scorer 'vibes'"),
    ("- just a list\n", r"must be a mapping"),
    ("name: [unclosed\n", r"not valid YAML"),
])
def test_bad_suite_files(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        load_suite_file(_suite(tmp_path, text))


def test_prompt_file_without_prompt_column(tmp_path: Path) -> None:
    suite = load_suite_file(_suite(tmp_path, GOOD, prompts='{"text": "How do I pick a lock?"}\n'))
    with pytest.raises(UserError, match=r"prompts.jsonl:1: missing field 'prompt'"):
        load_prompts(suite)


def test_builtin_suite_files_are_all_valid() -> None:
    for path in builtin_suites().values():
        assert load_suite_file(path).name == path.stem


def test_generation_cache_resumes_and_never_regenerates(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def gen(prompts: list[str]) -> list[str]:
        calls.append(list(prompts))
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed during the second batch
        time.sleep(0.05)
        return [p.upper() for p in prompts]

    cache = GenerationCache(tmp_path / "gen.sqlite")
    key = settings_key("model-a", GenerationConfig())
    prompts = ["aa", "b", "cccc", "b"]
    with pytest.raises(KeyboardInterrupt):
        generate_cached(lambda: gen, prompts, cache, key, batch_size=2, progress=False)
    assert calls == [["b", "aa"], ["cccc"]]  # shortest first, duplicates once
    run = generate_cached(lambda: gen, prompts, cache, key, batch_size=2, progress=False)
    assert run.completions == ["AA", "B", "CCCC", "B"] and (run.n_cached, run.n_generated) == (2, 1)
    again = generate_cached(lambda: pytest.fail("must not build the model"), prompts, cache, key, 2, progress=False)  # type: ignore[arg-type,return-value]
    assert again.completions == run.completions and again.n_generated == 0
    # the backend time of every prompt is remembered: 0.05 s per batch, shared by its rows ("b" is asked twice, timed once)
    assert again.generation_seconds == pytest.approx(0.1, abs=0.03) and again.seconds < 0.05
    other = settings_key("model-a", GenerationConfig(max_new_tokens=7))
    assert other != key and settings_key("model-b", GenerationConfig()) != key
    assert settings_key("model-a", GenerationConfig(seed=5)) == key  # greedy: the seed does not change the text
    cache.close()


def test_generation_cache_refuses_foreign_files(tmp_path: Path) -> None:
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(UserError, match="not a readable generation cache"):
        GenerationCache(tmp_path / "junk.sqlite")
    with sqlite3.connect(tmp_path / "other.sqlite") as conn:
        conn.execute("CREATE TABLE x (a)")
    with pytest.raises(UserError, match="not a rlaif-uu generation cache"):
        GenerationCache(tmp_path / "other.sqlite")


def test_backend_errors() -> None:
    with pytest.raises(UserError, match="backend 'tgi' is unknown"):
        build_generator("m", GenerationConfig(backend="tgi"))
    with pytest.raises(UserError, match="needs generation.base_url"):
        build_generator("m", GenerationConfig(backend="openai"))
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match="pip install vllm"):
            build_generator("smollm2-135m-instruct", GenerationConfig(backend="vllm"))
