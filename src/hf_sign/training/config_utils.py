"""Named YAML configs and `--set key=value` overrides, shared by the training entry points.

* `resolve_config(system, config)`: `"tiny"` -> `hf_sign/configs/<system>/tiny.yaml`; a path to a YAML file works too.
* `load_config(system, config)`: the YAML as a (nested) dict.
* `parse_overrides(["vae.num_atomic_joints=5", ...])`: CLI `--set` strings -> `{"vae.num_atomic_joints": "5"}`.
* `apply_overrides(config, overrides)`: dotted keys into a nested dict, each value checked against (and, for
  strings from the command line, converted to) the type of the value it replaces. Unknown keys raise a
  `ValueError` that lists the valid keys of that section, so a typo never trains the wrong model silently.

The checked types are those of the *current* value: a config has to hold every key (with its default) before
overrides are applied; entry points fill defaults from their schemas first (see `sign_sald_trainer.full_config`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Union

import yaml

CONFIGS_DIR = Path(__file__).resolve().parents[1] / "configs"

__all__ = ["CONFIGS_DIR", "resolve_config", "load_config", "parse_overrides", "coerce_value", "apply_overrides", "deep_update"]


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
        raise ValueError(f"Unknown {system} config {str(config)!r}; choose one of {names} or pass a path to a YAML file.")
    return named


def load_config(system: str, config: Union[str, Path]) -> Dict[str, Any]:
    """Read the YAML config `config` (name or path) of `system` into a dict."""
    path = resolve_config(system, config)
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"Config {path} must hold a mapping at the top level; got {type(data).__name__}.")
    return data


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


def coerce_value(value: Any, current: Any, key: str) -> Any:
    """Check `value` against the type of `current` (the value it replaces); strings are parsed as YAML first.

    Rules: a bool only replaces a bool; an int replaces an int (a float with an integral value is accepted); a
    float accepts ints; a list/tuple accepts a list or tuple (kept as a list); a string accepts a string; `None`
    as the current value (an optional field) accepts anything, and any field accepts `None` only if it was `None`.
    """
    if isinstance(value, str) and not isinstance(current, str):
        try:
            value = yaml.safe_load(value) if value.strip() else value
        except yaml.YAMLError as err:
            raise ValueError(f"`{key}`: cannot parse {value!r} ({err}).") from err
        if isinstance(value, str) and isinstance(current, (int, float)) and not isinstance(current, bool):
            try:  # YAML 1.1 reads `1e-3` (no dot) as a string; Python's float() does not
                value = float(value)
            except ValueError:
                pass
    if current is None:
        return value
    if value is None:
        raise ValueError(f"`{key}` must be a {_type_name(current)}; got None.")
    if isinstance(current, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(current, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif isinstance(current, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(current, (list, tuple)):
        if isinstance(value, (list, tuple)):
            return list(value)
    elif isinstance(current, str):
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # e.g. `--set text_encoder.type=123` is still a string field
    elif isinstance(current, dict):
        if isinstance(value, dict):
            return value
    else:
        return value
    raise ValueError(f"`{key}` must be a {_type_name(current)} (current value {current!r}); got {value!r}.")


def apply_overrides(config: Mapping[str, Any], overrides: Optional[Mapping[str, Any]], where: str = "config") -> Dict[str, Any]:
    """Return a copy of the nested `config` with dotted-key `overrides` applied (type-checked, unknown keys raise).

    Args:
        config (`Mapping`): nested dict holding every valid key (with its default).
        overrides (`Mapping[str, Any]`, *optional*): e.g. `{"vae.num_atomic_joints": 5, "denoiser.use_cross_attention":
            "false"}`; values may be strings (from `--set`), converted to the replaced value's type.
        where (`str`, *optional*, defaults to `"config"`): name used in error messages.
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
                if isinstance(node[part], dict) and not isinstance(value, dict):
                    raise ValueError(f"`{key}` is a section; set one of its keys: {sorted(node[part])}.")
                node[part] = coerce_value(value, node[part], key)
            else:
                node = node[part]
    return out


def deep_update(base: Dict[str, Any], update: Mapping[str, Any], where: str = "config", strict: bool = True, _prefix: str = "") -> Dict[str, Any]:
    """Merge nested `update` into `base` in place (values type-checked); with `strict`, keys absent from `base` raise."""
    for key, value in (update or {}).items():
        name = f"{_prefix}{key}"
        if key not in base:
            if strict:
                section = f"section `{_prefix[:-1]}`" if _prefix else "the top level"
                raise ValueError(f"Unknown {where} key `{name}`; valid keys in {section}: {sorted(base)}.")
            base[key] = value
            continue
        if isinstance(base[key], dict) and isinstance(value, dict):
            deep_update(base[key], value, where, strict, f"{name}.")
        else:
            base[key] = coerce_value(value, base[key], name)
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
