"""The one config mechanism: typed dataclasses < YAML file < CLI flags < dotted overrides.

Built on OmegaConf structured configs; unknown keys and wrong types become a
one-line :class:`UserError` that suggests the closest valid key; every numeric setting
is range-checked against :mod:`rlaif_uu.config_ranges`.

A *tagged* field (``field(metadata={"tagged": Tagged(KINDS, default)})``: a judge, a backbone) holds one of several
small dataclasses chosen by its ``kind``. OmegaConf has no unions of dataclasses, so those
subtrees are taken out of every layer, merged here (a layer that changes ``kind`` starts from
that kind's defaults) and checked against the chosen kind's fields: a key the kind does not
read is an error that names the kinds that do read it.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException, ValidationError

from rlaif_uu.config_ranges import check_choice, check_ranges
from rlaif_uu.errors import UserError

T = TypeVar("T")


@dataclass(frozen=True)
class Tagged:
    """The kinds of a tagged field: ``kind`` value -> dataclass, and the kind of an item that names none."""

    kinds: Mapping[str, type]
    default_kind: str


def build_tagged(tag: Tagged, data: Mapping[str, Any], where: str) -> Any:
    """The dataclass of ``data['kind']`` (default ``tag.default_kind``) filled from ``data``.

    Raises:
        UserError: an unknown kind, a key that kind does not read, or a value of the wrong type.
    """
    kind = data.get("kind", tag.default_kind)
    check_choice(f"{where}.kind", kind, tag.kinds)
    cls = tag.kinds[kind]
    own = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key in own:
            continue
        readers = [k for k, c in tag.kinds.items() if key in {f.name for f in dataclasses.fields(c)}]
        if readers:
            raise UserError(f"{where}.{key} applies to kind {' / '.join(readers)}, not to kind '{kind}': "
                            f"remove it or change {where}.kind")
        close = difflib.get_close_matches(str(key), sorted(own), n=1, cutoff=0.5)
        hint = f"did you mean '{where}.{close[0]}'?" if close else f"kind '{kind}' reads {', '.join(sorted(own))}"
        raise UserError(f"unknown config key '{where}.{key}'; {hint}")
    try:
        node = OmegaConf.merge(OmegaConf.structured(cls), {**data, "kind": kind})
        return OmegaConf.to_object(node)
    except OmegaConfBaseException as exc:
        raise UserError(f"config key '{where}.{exc.full_key}': {str(exc).splitlines()[0]}") from None


def _tagged_paths(schema: Any, prefix: str = "") -> dict[str, Tagged]:
    out = {}
    for f in dataclasses.fields(schema):
        if "tagged" in f.metadata:
            out[prefix + f.name] = f.metadata["tagged"]
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]
        if dataclasses.is_dataclass(default):
            out.update(_tagged_paths(default, prefix + f.name + "."))
    return out


_ABSENT = object()


def _pop(tree: Any, path: str) -> Any:
    *parents, last = path.split(".")
    for key in parents:
        if not isinstance(tree, dict) or key not in tree:
            return _ABSENT
        tree = tree[key]
    return tree.pop(last, _ABSENT) if isinstance(tree, dict) else _ABSENT


def _merge_tagged(tag: Tagged, default: Any, layers: list[tuple[str, Any]], where: str) -> Any:
    """The tagged value after every layer: a list is replaced whole; a mapping merges into the value so far."""
    if isinstance(default, list):
        if not layers:
            return default
        source, value = layers[-1]
        if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
            raise UserError(f"{source}: {where} must be a list of mappings (each with a kind and its settings)")
        try:
            return [build_tagged(tag, item, f"{where}[{i}]") for i, item in enumerate(value)]
        except UserError as exc:
            raise UserError(f"{source}: {exc}") from None
    value = {f.name: getattr(default, f.name) for f in dataclasses.fields(default)}
    for source, layer in layers:
        if not isinstance(layer, Mapping):
            raise UserError(f"{source}: {where} must be a mapping (kind: ..., and its settings)")
        if layer.get("kind", value["kind"]) != value["kind"]:
            value = {}  # another kind starts from its own defaults
        value.update(layer)
        try:
            build_tagged(tag, value, where)
        except UserError as exc:
            raise UserError(f"{source}: {exc}") from None
    return build_tagged(tag, value, where)


def _set_path(obj: Any, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        obj = getattr(obj, key)
    setattr(obj, last, value)


def _get_path(obj: Any, path: str) -> Any:
    for key in path.split("."):
        obj = getattr(obj, key)
    return obj


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
    tagged_paths = _tagged_paths(schema)
    tagged_layers: dict[str, list[tuple[str, Any]]] = {p: [] for p in tagged_paths}
    if tagged_paths:  # take the tagged subtrees out of every layer (OmegaConf cannot type them)
        plain = []
        for source, layer in layers:
            tree = OmegaConf.to_container(layer) if isinstance(layer, DictConfig) else layer
            for path in tagged_paths:
                sub = _pop(tree, path)
                if sub is not _ABSENT:
                    tagged_layers[path].append((source, sub))
            plain.append((source, OmegaConf.create(tree)))
        layers = plain
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
    for path, tag in tagged_paths.items():
        _set_path(cfg, path, _merge_tagged(tag, _get_path(cfg, path), tagged_layers[path], path))
    check_ranges(cfg)  # every stage's numbers are range-checked here, before any work
    return cfg  # type: ignore[return-value]


def to_yaml(cfg: Any) -> str:
    """The resolved config as YAML (saved beside every stage's outputs)."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
