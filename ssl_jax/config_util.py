"""Loading experiment configs: `FILE[:variant]` Python files with `get_config()`, and `--config.a.b=v`
overrides, as in the flax examples and big_vision. Also the workdir's record of the config it was run with."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import types
from collections.abc import Sequence
from typing import Any

import ml_collections

from ssl_jax import default_config

CONFIG_FILE = "config.json"
# Keys that may change when a run resumes (the run is the same run, trained or logged longer).
RESUMABLE_KEYS = (
    "num_epochs",
    "num_steps",
    "log_every_steps",
    "checkpoint_every_steps",
    "eval_every_steps",
    "keep_checkpoints",
    "eval",
)

# Keys that moved: old dotted name -> new one. (Text fine-tuning had its own config.finetune section
# until the one engine, ssl_jax.transfer.finetune, read config.eval.finetune_* for every method.) An
# override or a config file naming an old key is an error naming the new one; a saved config (an
# older run's workdir) is read with its values moved.
RENAMED_KEYS = {
    "finetune.num_steps": "eval.finetune_steps",
    "finetune.batch_size": "eval.finetune_batch_size",
    "finetune.learning_rate": "eval.finetune_learning_rate",
    "finetune.weight_decay": "eval.finetune_weight_decay",
    "finetune.warmup_steps": "eval.finetune_warmup_steps",
    "finetune.seed": "eval.finetune_seeds",  # one seed s -> (s,)
    "finetune.eval_batch_size": "eval.batch_size",
}


def _renamed(key: str) -> str | None:
    """The message for an override or config field under a moved key, else None."""
    if key in RENAMED_KEYS:
        return f"config.{key} is now config.{RENAMED_KEYS[key]}"
    section = key.split(".")[0]
    moved = [f"{k} -> {v}" for k, v in RENAMED_KEYS.items() if k.split(".")[0] == section]
    if moved and key == section:
        return f"config.{section} moved: {', '.join(moved)}"
    return None


def check_renamed(config: ml_collections.ConfigDict) -> None:
    """Raises naming the new keys when `config` still sets a moved one."""
    for section in {k.split(".")[0] for k in RENAMED_KEYS}:
        if section in config:
            raise KeyError(_renamed(section) + "; update the config file.")


def migrate_renamed(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """`config` (a saved one) with the values of moved keys at their new names, in place."""
    for section in {k.split(".")[0] for k in RENAMED_KEYS}:
        if section not in config:
            continue
        old = config[section].to_dict()
        del config[section]
        if section == "finetune":  # the text engine always scored the validation split too
            config.eval.finetune_validation_split = "validation"
            config.eval.finetune_augment = False
        for key, value in old.items():
            new = RENAMED_KEYS.get(f"{section}.{key}")
            if new is None or new == "eval.batch_size" and "batch_size" in config.eval:
                continue
            node, _, field = new.rpartition(".")
            config[node][field] = (int(value),) if new == "eval.finetune_seeds" else value
    return config


def load_config(spec: str | None) -> ml_collections.ConfigDict:
    """`path/to/file.py[:variant]` -> that file's `get_config(variant)`; None -> the packaged default."""
    if spec is None:
        return default_config.get_config()
    path, _, variant = spec.partition(":")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Config file {path!r} does not exist (expected FILE.py[:variant])."
        )
    module = _run_file(path)
    if not hasattr(module, "get_config"):
        raise AttributeError(f"Config file {path!r} defines no get_config().")
    config = module.get_config(variant) if variant else module.get_config()
    check_renamed(config)
    return config


def import_sibling(anchor: str, name: str) -> types.ModuleType:
    """The module `name`.py beside the file `anchor`, run afresh as load_config runs a config file:
    how configs/ files import their shared bases (`import_sibling(__file__, "_datasets")`) without
    configs/ being a package or on sys.path."""
    return _run_file(os.path.join(os.path.dirname(os.path.abspath(anchor)), f"{name}.py"))


def _run_file(path: str) -> types.ModuleType:
    module_spec = importlib.util.spec_from_file_location(f"ssl_jax_config_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def _parse_value(text: str, current: Any) -> Any:
    """The override's text as the type of the field it replaces (strings may be quoted or bare)."""
    if isinstance(current, str) or current is None and not _looks_literal(text):
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
            return text[1:-1]
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(current, tuple) and isinstance(value, list):
        value = tuple(value)
    return value


def _looks_literal(text: str) -> bool:
    try:
        ast.literal_eval(text)
        return True
    except (ValueError, SyntaxError):
        return False


def _valid_keys(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    keys = []
    for k, v in config.items():
        keys.append(prefix + k)
        if isinstance(v, ml_collections.ConfigDict):
            keys.extend(_valid_keys(v, prefix + k + "."))
    return keys


def apply_overrides(config: ml_collections.ConfigDict, overrides: Sequence[str]) -> None:
    """Applies `a.b=value` overrides in place; an unknown key is an error listing the valid ones."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"Override {item!r} must look like --config.{item}=VALUE.")
        if _renamed(key):
            raise KeyError(f"Unknown config key {key!r}: {_renamed(key)}.")
        node = config
        parts = key.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, ml_collections.ConfigDict) or part not in node:
                where = ".".join(parts[:i]) or "config"
                valid = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
                raise KeyError(
                    f"Unknown config key {key!r}: {where} has no field {part!r}. "
                    f"Valid keys there: {', '.join(valid)}."
                )
            if i < len(parts) - 1:
                node = node[part]
        last = parts[-1]
        node[last] = _parse_value(text, node[last])


def to_dict(config: ml_collections.ConfigDict) -> dict:
    return json.loads(config.to_json_best_effort())


def load_saved(workdir: str) -> ml_collections.ConfigDict:
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{workdir!r} holds no {CONFIG_FILE}: is it the workdir of an `ssl-jax pretrain` run?"
        )
    with open(path) as f:
        return migrate_renamed(ml_collections.ConfigDict(json.load(f)))


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, prefix + k + "."))
        else:
            out[prefix + k] = v
    return out


def config_differences(saved: dict, new: dict) -> list[str]:
    """Keys whose values differ between two config dicts, ignoring the resumable ones.

    A key the saved config lacks (it was written before the option existed) counts as the same when
    the new config leaves it at ssl_jax.default_config's value: the old run behaved as the default.
    """
    a, b = _flatten(saved), _flatten(new)
    defaults = _flatten(to_dict(default_config.get_config()))
    diffs = []
    for key in sorted(set(a) | set(b)):
        if key.split(".")[0] in RESUMABLE_KEYS:
            continue
        if key not in a and key in defaults and b.get(key) == defaults[key]:
            continue
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            diffs.append(f"{key}: {a.get(key, '<absent>')!r} -> {b.get(key, '<absent>')!r}")
    return diffs
