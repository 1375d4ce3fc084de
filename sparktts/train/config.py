"""Typed training configs: nested frozen dataclasses read from YAML, unknown keys refused.

``--config`` takes a YAML path or the name of a shipped preset (``tiny`` for tests and smoke runs,
``small`` for one CPU machine, ``release`` for the released dimensions). Presets live in
``sparktts/train/presets/<kind>/<name>.yaml`` and are read through :mod:`importlib.resources`, so
they work from an installed wheel too.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ..errors import ConfigError

T = TypeVar("T")

PRESETS = ("tiny", "small", "release")


def preset_names(kind: str) -> list[str]:
    """Names of the presets shipped for ``kind`` (``"codec"`` or ``"lm"``)."""
    folder = resources.files("sparktts.train") / "presets" / kind
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def read_config_source(source: str | Path, kind: str) -> tuple[dict[str, Any], str]:
    """Return ``(mapping, where)`` for a YAML path or a preset name of ``kind``."""
    path = Path(source).expanduser()
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found. Pass a YAML file or one of the presets "
                              f"{preset_names(kind)}.")
        text, where = path.read_text(), str(path)
    else:
        names = preset_names(kind)
        if str(source) not in names:
            raise ConfigError(f"'{source}' is neither a YAML file nor a {kind} preset; presets: {names}.")
        text = (resources.files("sparktts.train") / "presets" / kind / f"{source}.yaml").read_text()
        where = f"preset {kind}/{source}"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({exc}).") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level, got {type(data).__name__}.")
    return data, where


def _strip_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _coerce(value: Any, tp: Any, where: str) -> Any:
    tp = _strip_optional(tp)
    if value is None:
        return None
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    origin = typing.get_origin(tp)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}.")
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        return tuple(_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}.")
        return dict(value)
    if tp in (bool, str):
        if not isinstance(value, tp):
            raise ConfigError(f"{where}: expected {'true or false' if tp is bool else 'a string'}, got {value!r}.")
        return value
    if tp in (int, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if tp is int:
            ok = ok and float(value).is_integer()
        if not ok:
            raise ConfigError(f"{where}: expected a {tp.__name__}, got {value!r}.")
        return tp(value)
    return value


def from_dict(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass ``cls`` from a mapping; unknown keys and wrong types are errors naming them."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}.")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys are {sorted(fields)}.")
    missing = sorted(n for n, f in fields.items() if n not in data and f.default is dataclasses.MISSING
                     and f.default_factory is dataclasses.MISSING)
    if missing:
        raise ConfigError(f"{where}: missing key(s) {missing}.")
    values = {k: _coerce(v, hints[k], f"{where}: {k}") for k, v in data.items()}
    return cls(**values)


def to_dict(obj: Any) -> dict[str, Any]:
    """A config dataclass as plain YAML-ready data (tuples become lists)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(obj)


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` laid over it, section by section: ``{"data": {"batch_size": 4}}``
    changes one key of ``data`` and keeps the others; any non-mapping value replaces what was there."""
    out = dict(base)
    for key, value in overrides.items():
        old = out.get(key)
        out[key] = merge(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
    return out


def load_config(cls: type[T], source: str | Path, kind: str, overrides: dict[str, Any] | None = None) -> T:
    """Read ``cls`` from a YAML path or preset name, with optional ``overrides`` (:func:`merge`)."""
    data, where = read_config_source(source, kind)
    if overrides:
        data = merge(data, overrides)
    return from_dict(cls, data, where)
