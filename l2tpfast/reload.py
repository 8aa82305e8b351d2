"""What SIGHUP does with a new configuration file: the keys it applies and the ones it cannot.

:func:`reload_plan` compares the running file with the new one key by key; a changed key that
:mod:`l2tpfast.schema` marks reloadable takes its new value, any other keeps the running one and
is named, so the operator learns which changes need a restart.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from l2tpfast import schema
from l2tpfast.config import NodeConfig, parse_config


def _flatten(data: dict[str, Any]) -> dict[str, Any]:
    """``section.key`` -> value; ``[[profile]]`` counts as one key (any change is reloadable)."""
    out: dict[str, Any] = {}
    for section, table in data.items():
        if isinstance(table, dict):
            for key, value in table.items():
                out[f"{section}.{key}"] = value
        else:
            out[section] = table
    return out


def reload_plan(running: NodeConfig, fresh: NodeConfig) -> tuple[NodeConfig, list[str], list[str]]:
    """What SIGHUP does: the config to run with, the keys applied, the keys that need a restart.

    A changed key that :mod:`l2tpfast.schema` does not mark reloadable keeps its running value.
    """
    old, new = _flatten(running.raw), _flatten(fresh.raw)
    applied, restart = [], []
    merged = {s: (dict(t) if isinstance(t, dict) else t) for s, t in fresh.raw.items()}
    # A section that appears or goes (RADIUS, PPP, the data plane) changes what runs: restart.
    for section in sorted((set(running.raw) ^ set(fresh.raw)) & _STRUCTURAL):
        restart.append(f"[{section}]")
        if section in running.raw:
            merged[section] = dict(running.raw[section])
        else:
            del merged[section]
        old = {k: v for k, v in old.items() if not k.startswith(section + ".")}
        new = {k: v for k, v in new.items() if not k.startswith(section + ".")}
    for name in sorted(set(old) | set(new)):
        if old.get(name, _MISSING) == new.get(name, _MISSING):
            continue
        section, _, key = name.partition(".")
        if schema.reloadable(section, key):
            applied.append(name)
            continue
        restart.append(name)
        table = merged.setdefault(section, {})
        if name in old:
            table[key] = old[name]
        else:
            del table[key]
    return dataclasses.replace(parse_config(merged), raw=merged), applied, restart


_MISSING = object()
_STRUCTURAL = {"radius", "ppp", "lns", "lac", "dataplane", "metrics"}
