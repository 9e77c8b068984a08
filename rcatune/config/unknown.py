"""Keys the schemas do not know: a typo added with `+` (`+pipline=prepare`) would otherwise be carried along
silently while the run goes on with the default it meant to change. Every composed config is checked."""

from __future__ import annotations

import dataclasses
import difflib

from omegaconf import DictConfig, OmegaConf

from rcatune.errors import ConfigError


def unknown_keys(cfg: DictConfig, path: str = "") -> list[tuple[str, list[str]]]:
    """(full key, the keys its schema knows there) for every key no dataclass schema declares."""
    found = []
    schema = OmegaConf.get_type(cfg)
    known = {f.name for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else None
    for key in cfg.keys():
        full = f"{path}{key}"
        if known is not None and key not in known:
            found.append((full, sorted(known)))
            continue
        node = cfg._get_node(key)
        if isinstance(node, DictConfig) and not node._is_none() and not node._is_missing():
            found += unknown_keys(node, f"{full}.")
    return found


def refuse_unknown_keys(cfg: DictConfig) -> None:
    """A ConfigError naming each unknown key and the nearest known one, before anything runs."""
    problems = []
    for full, known in unknown_keys(cfg):
        leaf = full.rsplit(".", 1)[-1]
        near = difflib.get_close_matches(leaf, known, n=1, cutoff=0.6)
        where = full.rsplit(".", 1)[0] + "." if "." in full else ""
        hint = f"; did you mean {where}{near[0]}?" if near else f"; known here: {', '.join(known)}"
        problems.append(f"unknown key {full}{hint}")
    if problems:
        raise ConfigError("; ".join(problems) + " (nothing was run)")
