"""Named YAML configs and `--set key=value` overrides, shared by the training entry points.

* `resolve_config(system, config)`: `"tiny"` -> `hf_sign/configs/<system>/tiny.yaml`; a path to a YAML file works too.
* `load_config(system, config)`: the YAML as a (nested) dict; a YAML whose `base` names another config of the system
  holds only what differs from that one.
* `parse_overrides(["vae.num_atomic_joints=5", ...])`: CLI `--set` strings -> `{"vae.num_atomic_joints": "5"}`.
* `apply_overrides(config, overrides)`: dotted keys into a nested dict, each value checked against (and, for
  strings from the command line, converted to) the type of the value it replaces. Unknown keys raise a
  `ValueError` that lists the valid keys of that section, so a typo never trains the wrong model silently.

* `ConfigSection`, `ConfigSchema`: a system's config as sections whose keys, defaults and types are read off the
  model signatures and the training argument dataclasses; `ConfigSchema.resolve(config, overrides)` merges
  defaults <- YAML <- overrides, so a YAML config lists only what differs from the defaults.

The checked types are those of the *current* value (and, for optional fields whose default is `None`, of their
annotation): a config holds every key (with its default) before YAML values and overrides are merged into it.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import typing
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

import yaml

CONFIGS_DIR = Path(__file__).resolve().parents[1] / "configs"

__all__ = [
    "CONFIGS_DIR",
    "resolve_config",
    "load_config",
    "parse_overrides",
    "coerce_value",
    "apply_overrides",
    "deep_update",
    "ConfigSection",
    "ConfigSchema",
]


def resolve_config(system: str, config: Union[str, Path]) -> Path:
    """`config` as a YAML path, or a config name under `hf_sign/configs/<system>/` (`tiny`, `small`, `paper`, ...)."""
    path = Path(config)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise ValueError(f"`config` file {str(config)!r} does not exist.")
        return path
    folder = CONFIGS_DIR / system
    named = folder / f"{config}.yaml"
    if not named.is_file():
        names = sorted(p.stem for p in folder.glob("*.yaml"))
        raise ValueError(
            f"Unknown {system} config {str(config)!r}; choose one of {names} or pass a path to a YAML file."
        )
    return named


def load_config(system: str, config: Union[str, Path], _seen: Tuple[Path, ...] = ()) -> Dict[str, Any]:
    """Read the YAML config `config` (name or path) of `system` into a dict.

    A top-level `base: NAME` (a config name of the same system, or a YAML path) makes the file a variant of that
    config: its values are merged over the base's, section by section, and `base` itself is removed.
    """
    path = resolve_config(system, config)
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"Config {path} must hold a mapping at the top level; got {type(data).__name__}.")
    if "base" not in data:
        return data
    base = data.pop("base")
    if not isinstance(base, str) or not base:
        raise ValueError(f"`base` in config {path} must name another {system} config; got {base!r}.")
    if path.resolve() in _seen:
        raise ValueError(f"Config {path} is its own `base` (through {[p.name for p in _seen]}).")
    return _merge(load_config(system, base, _seen + (path.resolve(),)), data)


def _merge(base: Dict[str, Any], update: Mapping[str, Any]) -> Dict[str, Any]:
    """`update` over `base`, section by section; the values are checked later, against the schema."""
    for key, value in update.items():
        if isinstance(base.get(key), dict) and isinstance(value, dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def parse_overrides(items: Optional[Iterable[str]]) -> Dict[str, str]:
    """`["a.b=1", "c=x"]` (the CLI's `--set` values) -> `{"a.b": "1", "c": "x"}` (values stay strings)."""
    out: Dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"Override {item!r} must look like key=value (e.g. vae.num_atomic_joints=5).")
        key, value = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ValueError(f"Override {item!r} has an empty key.")
        out[key] = value.strip()
    return out


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (list, tuple)):
        return "list"
    return type(value).__name__


def coerce_value(value: Any, current: Any, key: str, like: Any = None) -> Any:
    """Check `value` against the type of `current` (the value it replaces); strings are parsed as YAML first.

    Rules: a bool only replaces a bool; an int replaces an int (a float with an integral value is accepted); a
    float accepts ints; a list/tuple accepts a list or tuple (kept as a list); a string accepts a string; a dict
    accepts a dict. An optional field (`like` given: a value of the field's annotated type, e.g. `0` for
    `Optional[int]`; or `current` is `None`) accepts `None`, and otherwise a value of the type of `current` (or of
    `like` when `current` is `None`; anything when both are `None`). Any other field rejects `None`.
    """
    optional = current is None or like is not None
    expected = like if current is None else current
    if isinstance(value, str) and isinstance(expected, str):
        if optional and value.strip() in ("null", "~"):
            return None  # an optional string: only YAML's null spellings are None
    elif isinstance(value, str):
        try:
            value = yaml.safe_load(value) if value.strip() else value
        except yaml.YAMLError as err:
            raise ValueError(f"`{key}`: cannot parse {value!r} ({err}).") from err
        if isinstance(value, str) and isinstance(expected, (int, float)) and not isinstance(expected, bool):
            try:  # YAML 1.1 reads `1e-3` (no dot) as a string; Python's float() does not
                value = float(value)
            except ValueError:
                pass
    if value is None:
        if optional:
            return None
        raise ValueError(f"`{key}` must be a {_type_name(current)}; got None.")
    if expected is None:
        return value
    if isinstance(expected, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(expected, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif isinstance(expected, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(expected, (list, tuple)):
        if isinstance(value, (list, tuple)):
            return list(value)
    elif isinstance(expected, str):
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # e.g. `--set text_encoder.type=123` is still a string field
    elif isinstance(expected, dict):
        if isinstance(value, dict):
            return value
    else:
        return value
    raise ValueError(f"`{key}` must be a {_type_name(expected)} (current value {current!r}); got {value!r}.")


def apply_overrides(
    config: Mapping[str, Any],
    overrides: Optional[Mapping[str, Any]],
    where: str = "config",
    types: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """Return a copy of the nested `config` with dotted-key `overrides` applied (type-checked, unknown keys raise).

    Args:
        config (`Mapping`): nested dict holding every valid key (with its default).
        overrides (`Mapping[str, Any]`, *optional*): e.g. `{"vae.num_atomic_joints": 5, "denoiser.use_cross_attention":
            "false"}`; values may be strings (from `--set`), converted to the replaced value's type.
        where (`str`, *optional*, defaults to `"config"`): name used in error messages.
        types (`Mapping[str, Any]`, *optional*): dotted key -> a value of the key's type, for keys whose current value
            is `None` (see `ConfigSchema.types`).
    """
    out = copy.deepcopy(dict(config))
    for key, value in (overrides or {}).items():
        parts = str(key).split(".")
        node = out
        for depth, part in enumerate(parts):
            prefix = ".".join(parts[:depth])
            if not isinstance(node, dict):
                raise ValueError(f"Unknown {where} key `{key}`: `{prefix}` is not a section.")
            if part not in node:
                section = f"section `{prefix}`" if prefix else "the top level"
                raise ValueError(f"Unknown {where} key `{key}`; valid keys in {section}: {sorted(node)}.")
            if depth == len(parts) - 1:
                if isinstance(node[part], dict) and key not in (types or {}):  # a section: merged key by key
                    if not isinstance(value, dict):
                        raise ValueError(f"`{key}` is a section; set one of its keys: {sorted(node[part])}.")
                    deep_update(node[part], value, where, types=types, _prefix=f"{key}.")
                else:
                    node[part] = coerce_value(value, node[part], key, (types or {}).get(key))
            else:
                node = node[part]
    return out


def deep_update(
    base: Dict[str, Any],
    update: Mapping[str, Any],
    where: str = "config",
    strict: bool = True,
    types: Optional[Mapping[str, Any]] = None,
    _prefix: str = "",
) -> Dict[str, Any]:
    """Merge nested `update` into `base` in place (values type-checked); with `strict`, keys absent from `base`
    raise."""
    for key, value in (update or {}).items():
        name = f"{_prefix}{key}"
        if key not in base:
            if strict:
                section = f"section `{_prefix[:-1]}`" if _prefix else "the top level"
                raise ValueError(f"Unknown {where} key `{name}`; valid keys in {section}: {sorted(base)}.")
            base[key] = value
            continue
        if isinstance(base[key], dict) and isinstance(value, dict) and name not in (types or {}):
            deep_update(base[key], value, where, strict, types, f"{name}.")
        else:
            base[key] = coerce_value(value, base[key], name, (types or {}).get(name))
    return base


def flatten(config: Mapping[str, Any], prefix: str = "") -> List[str]:
    """Dotted names of every leaf of a nested dict (for help texts and error messages)."""
    names = []
    for key, value in config.items():
        if isinstance(value, dict):
            names += flatten(value, f"{prefix}{key}.")
        else:
            names.append(f"{prefix}{key}")
    return names


# ------------------------------------------------------------------------------------------------- schemas
def _like(annotation: Any) -> Any:
    """A value of the type `annotation` names (`Optional[X]` -> a value of X), or `None` when it names no one type."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, UnionType):
        inner = [a for a in args if a is not type(None)]
        return _like(inner[0]) if len(inner) == 1 else None
    if annotation in (bool, int, float, str):
        return annotation()
    if annotation in (list, tuple) or origin in (list, tuple):
        return []
    if annotation is dict or origin is dict:
        return {}
    return None


@dataclass(frozen=True)
class ConfigSection:
    """One section of a system's config: its keys, defaults and types, read off a class.

    Args:
        source (`type`): a dataclass (its fields are the keys) or a class whose `__init__` arguments with defaults
            are the keys (a model, a scheduler).
        exclude (`Tuple[str]`, *optional*): arguments that are not configured (the trainer derives them from the
            data or from another model).
        include (`Tuple[str]`, *optional*): only these arguments (e.g. the scheduler settings a system exposes).
        defaults (`Mapping[str, Any]`, *optional*): the system's own defaults for some keys, replacing the source's.
    """

    source: type
    exclude: Tuple[str, ...] = ()
    include: Optional[Tuple[str, ...]] = None
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def fields(self) -> Dict[str, Tuple[Any, Any]]:
        """`{name: (default, a value of its type)}` in the source's order."""
        if dataclasses.is_dataclass(self.source):
            hints = typing.get_type_hints(self.source)
            found = {}
            for f in dataclasses.fields(self.source):
                if f.default is not dataclasses.MISSING:
                    found[f.name] = f.default
                elif f.default_factory is not dataclasses.MISSING:
                    found[f.name] = f.default_factory()
        else:
            init = self.source.__init__
            try:
                hints = typing.get_type_hints(init)
            except Exception:  # an annotation this Python cannot evaluate: type by the defaults alone
                hints = {}
            params = inspect.signature(init).parameters.items()
            found = {n: p.default for n, p in params if n != "self" and p.default is not inspect.Parameter.empty}
        unknown = sorted((set(self.include or ()) | set(self.defaults)) - set(found))
        if unknown:
            raise ValueError(f"{self.source.__name__} has no configurable argument(s) {unknown}.")
        out = {}
        for name, default in found.items():
            if name in self.exclude or (self.include is not None and name not in self.include):
                continue
            default = self.defaults.get(name, default)
            default = list(default) if isinstance(default, tuple) else copy.deepcopy(default)
            out[name] = (default, _like(hints.get(name)))
        return out


class ConfigSchema:
    """A system's config: top-level values and sections, each with its defaults and types.

    The defaults come from the sections' sources (model signatures, training argument dataclasses), so a YAML config
    lists only what differs from them. `resolve` merges defaults <- YAML <- dotted overrides, type-checked; unknown
    keys raise with the valid keys of their section.

    Args:
        system (`str`): the config folder under `hf_sign/configs/` (e.g. `"sign-sald"`).
        sections (`Mapping[str, ConfigSection]`): section name -> section.
        top_level (`Mapping[str, Any]`, *optional*): top-level keys and their defaults (e.g. `seed`).
    """

    def __init__(
        self, system: str, sections: Mapping[str, ConfigSection], top_level: Optional[Mapping[str, Any]] = None
    ):
        self.system = system
        self.sections = dict(sections)
        self.top_level = dict(top_level or {})

    def defaults(self) -> Dict[str, Any]:
        """Every key with its default."""
        cfg: Dict[str, Any] = copy.deepcopy(self.top_level)
        for name, section in self.sections.items():
            cfg[name] = {key: default for key, (default, _) in section.fields().items()}
        return cfg

    def types(self) -> Dict[str, Any]:
        """Dotted key -> a value of its type, for the keys whose default is `None` (optional fields)."""
        return {
            f"{name}.{key}": like
            for name, section in self.sections.items()
            for key, (default, like) in section.fields().items()
            if default is None and like is not None
        }

    def resolve(
        self, config: Union[str, Path, Mapping[str, Any], None] = None, overrides: Optional[Mapping[str, Any]] = None
    ) -> Dict[str, Any]:
        """Defaults <- `config` (a name under `hf_sign/configs/<system>/`, a YAML path, or a nested dict) <-
        dotted `overrides` (values may be strings, as `--set` gives them)."""
        cfg, types = self.defaults(), self.types()
        if isinstance(config, Mapping):
            deep_update(cfg, config, where=f"{self.system} config", types=types)
        elif config:
            deep_update(cfg, load_config(self.system, config), where=f"{self.system} config {config}", types=types)
        return apply_overrides(cfg, overrides, where=f"{self.system} config", types=types)
