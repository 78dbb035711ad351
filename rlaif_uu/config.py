"""The one config mechanism: typed dataclasses < YAML file < CLI flags < dotted overrides.

Built on OmegaConf structured configs; unknown keys and wrong types become a
one-line :class:`UserError` that suggests the closest valid key; every numeric setting
is range-checked against :mod:`rlaif_uu.config_ranges`.
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any, TypeVar

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException, ValidationError

from rlaif_uu.config_ranges import check_ranges
from rlaif_uu.errors import UserError

T = TypeVar("T")


def _keys(schema: Any, prefix: str = "") -> list[str]:
    out = []
    for f in dataclasses.fields(schema):
        out.append(prefix + f.name)
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]
        if dataclasses.is_dataclass(default):
            out.extend(_keys(default, prefix + f.name + "."))
    return out


def _unknown_key(schema: type, key: str, source: str) -> UserError:
    close = difflib.get_close_matches(key, _keys(schema), n=1, cutoff=0.5)
    parent = key.rpartition(".")[0]
    siblings = [k for k in _keys(schema) if k.rpartition(".")[0] == parent]  # the keys at the same level
    hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys{f' under {parent}' if parent else ''}: {', '.join(siblings)}"
    return UserError(f"{source}: unknown config key '{key}'{hint}")


def _yaml_layers(path: Path, seen: tuple[Path, ...]) -> list[tuple[str, Any]]:
    """The YAML file's layers: its ``base`` chain first, then the file itself."""
    if not path.exists():
        raise UserError(f"{path}: config file not found" + (f" (the base of {seen[-1]})" if seen else ""))
    if path.resolve() in seen:
        raise UserError(f"{path}: 'base' files form a cycle; remove one of the base keys")
    try:
        loaded = OmegaConf.load(path)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        raise UserError(f"{where}: not valid YAML ({exc.problem or exc.context}); fix the syntax on that line") from None
    except Exception as exc:  # noqa: BLE001 - yaml raises several types
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    base = loaded.pop("base", None) if isinstance(loaded, DictConfig) else None
    if base is None:
        return [(str(path), loaded)]
    if not isinstance(base, str):
        raise UserError(f"{path}: 'base' must be the path of another YAML file")
    return _yaml_layers(path.parent / base, (*seen, path.resolve())) + [(str(path), loaded)]


def load_config(schema: type[T], yaml_path: str | None = None, flags: dict[str, Any] | None = None,
                overrides: list[str] | None = None) -> T:
    """Merge the layers and return a validated instance of ``schema``.

    Args:
        schema: a dataclass type with defaults (``omegaconf.MISSING`` for required keys).
        yaml_path: optional YAML file (a mapping of the schema's keys). A top-level
            ``base: OTHER.yaml`` (relative to the file) loads that file first, so a recipe
            can be another recipe plus a few changes.
        flags: values from CLI flags; ``None`` values are ignored.
        overrides: dotted ``key=value`` strings (``backbone.lr=1e-3``).
    """
    base = OmegaConf.structured(schema)
    layers = []
    if yaml_path:
        layers += _yaml_layers(Path(yaml_path), ())
    if flags:
        flag_layer = OmegaConf.create({})
        for key, value in flags.items():
            if value is not None:  # a dotted key ("backbone.lr") is a nested setting, as in an override
                OmegaConf.update(flag_layer, key, value, force_add=True)
        layers.append(("command-line flags", flag_layer))
    if overrides:
        bad = [o for o in overrides if "=" not in o]
        if bad:
            raise UserError(f"override '{bad[0]}' must look like key=value (for example backbone.lr=1e-3)")
        layers.append(("overrides", OmegaConf.from_dotlist(overrides)))
    merged = base
    for source, layer in layers:
        try:
            merged = OmegaConf.merge(merged, layer)
        except ConfigKeyError as exc:
            raise _unknown_key(schema, str(exc.full_key or exc.key), source) from None
        except ValidationError as exc:
            raise UserError(f"{source}: config key '{exc.full_key}': {exc.msg.splitlines()[0]}") from None
    try:
        cfg = OmegaConf.to_object(merged)
    except MissingMandatoryValue as exc:
        raise UserError(f"missing required setting '{exc.full_key}' (pass it as a flag, in the YAML or as {exc.full_key}=...)") from None
    except OmegaConfBaseException as exc:
        raise UserError(f"config: {str(exc).splitlines()[0]}") from None
    check_ranges(cfg)  # every stage's numbers are range-checked here, before any work
    return cfg  # type: ignore[return-value]


def to_yaml(cfg: Any) -> str:
    """The resolved config as YAML (saved beside every stage's outputs)."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
