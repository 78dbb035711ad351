"""The shared vLLM engine options (rlaif_uu.vllm_engine) without vLLM: kwargs, defaults, one-line errors naming the field."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from rlaif_uu.cli import main
from rlaif_uu.errors import UserError
from rlaif_uu.eval.generation import (
    ENGINE_FIELDS,
    GenerationConfig,
    build_generator,
    settings_key,
)
from rlaif_uu.label.config import VllmJudgeConfig
from rlaif_uu.vllm_engine import EngineOptions, cpu_thread_binding, engine_kwargs
from tests.conftest import write_jsonl

GIB = 2**30


def test_engine_kwargs_defaults_on_cpu_and_gpu() -> None:
    cpu = engine_kwargs("/m", EngineOptions(), on_cpu=True, env={})
    assert cpu == {"model": "/m", "dtype": "auto", "seed": 0, "enforce_eager": False, "max_model_len": None,
                   "trust_remote_code": False, "disable_log_stats": True, "kv_cache_memory_bytes": GIB}
    assert "kv_cache_memory_bytes" not in engine_kwargs("/m", EngineOptions(), on_cpu=True, env={"VLLM_CPU_KVCACHE_SPACE": "4"})
    gpu = engine_kwargs("/m", EngineOptions(), on_cpu=False, env={})
    assert "kv_cache_memory_bytes" not in gpu and gpu["enforce_eager"] is False  # GPU: vLLM's defaults, CUDA graphs on


def test_engine_kwargs_pass_every_option() -> None:
    opts = EngineOptions(max_model_len=2048, dtype="float32", seed=3, gpu_memory_utilization=0.5, kv_cache_gb=2.5, threads=2,
                         enforce_eager=True)
    kw = engine_kwargs("hub/id", opts, on_cpu=True, env={"VLLM_CPU_KVCACHE_SPACE": "4"})  # an explicit size wins
    assert kw | {"kv_cache_memory_bytes": 0} == {"model": "hub/id", "dtype": "float32", "seed": 3, "enforce_eager": True,
                                                 "max_model_len": 2048, "trust_remote_code": False, "disable_log_stats": True,
                                                 "gpu_memory_utilization": 0.5, "kv_cache_memory_bytes": 0}
    assert kw["kv_cache_memory_bytes"] == int(2.5 * GIB)
    assert (cpu_thread_binding(1), cpu_thread_binding(4)) == ("0", "0-3")


@pytest.mark.parametrize(("change", "message"), [
    ({"kv_cache_gb": 0}, "generation.kv_cache_gb must be > 0 (got 0)"),
    ({"threads": 0}, "generation.threads must be >= 1 (got 0)"),
    ({"dtype": "fp32"}, "generation.dtype must be one of auto, half, float16, bfloat16, float, float32 (got 'fp32')"),
    ({"max_model_len": 0}, "generation.max_model_len must be >= 1"),
    ({"gpu_memory_utilization": 1.5}, "generation.gpu_memory_utilization must be in (0, 1]"),
])
def test_bad_engine_options_name_the_field(change: dict[str, object], message: str) -> None:
    with pytest.raises(UserError) as err:
        build_generator("smollm2-135m-instruct", GenerationConfig(backend="vllm", **change))  # type: ignore[arg-type]
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_generation_and_judge_configs_carry_the_same_engine_options() -> None:
    names = {f.name for f in dataclasses.fields(EngineOptions)}
    assert set(ENGINE_FIELDS) | {"seed"} == names
    assert names <= {f.name for f in dataclasses.fields(VllmJudgeConfig)}
    cfg = GenerationConfig(backend="vllm", dtype="float32", enforce_eager=True, kv_cache_gb=1, threads=1, max_model_len=2048)
    assert EngineOptions.from_config(cfg) == EngineOptions(max_model_len=2048, dtype="float32", kv_cache_gb=1, threads=1,
                                                           enforce_eager=True)


def test_settings_key_includes_a_chosen_vllm_dtype_only() -> None:
    vllm = GenerationConfig(backend="vllm")
    assert settings_key("m", vllm) == settings_key("m", dataclasses.replace(vllm, enforce_eager=True, threads=2, kv_cache_gb=3))
    assert settings_key("m", vllm) != settings_key("m", dataclasses.replace(vllm, dtype="float32"))
    hf = GenerationConfig()
    assert settings_key("m", hf) == settings_key("m", dataclasses.replace(hf, dtype="float32"))  # transformers: always fp32


def test_eval_cli_bad_engine_option_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_jsonl(tmp_path / "prompts.jsonl", [{"id": "p0", "prompt": "Name a red fruit."}])
    (tmp_path / "s.yaml").write_text("name: s\nversion: '1'\nkind: benign\nsource: {adapter: jsonl, path: prompts.jsonl}\n"
                                     "metrics: [{name: refusal_rate, higher_is_better: false}]\n")
    base = ["eval", "--model", "smollm2-135m-instruct", "--suites", str(tmp_path / "s.yaml"), "--backend", "vllm", "--no-progress",
            "--cache", str(tmp_path / "gen.sqlite")]
    for extra, message in ((["generation.kv_cache_gb=-1"], "'generation.kv_cache_gb' is -1; it must be > 0"),
                           (["generation.enforce_eagre=true"], "did you mean 'generation.enforce_eager'")):
        assert main([*base, "--out", str(tmp_path / "out"), *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not (tmp_path / "out").exists()
