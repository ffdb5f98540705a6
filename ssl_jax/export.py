"""`ssl-jax export`: a pre-trained encoder as a framework-neutral file that loads without JAX.

The encoder's variables ({"params", "batch_stats"}, as the checkpoint's encoder item holds them) are
flattened to "/"-joined paths ("params/conv0/kernel", "batch_stats/bn0/mean") and written as

- FILE.safetensors: the tensors, with the JSON manifest in the header metadata under "ssl_jax_manifest"
  (`safetensors.numpy.load_file` reads the tensors; `safe_open(...).metadata()` the manifest), or
- FILE.npz: the tensors plus the manifest as a 0-d unicode array "__manifest__" (`np.load` reads both,
  no pickle).

The manifest records what a user needs to run the encoder elsewhere: the method, the encoder's registry name
and keyword arguments, the input field and one example's shape, the normalization mean/std, the activation
dtype, the checkpoint step, and every tensor's shape and dtype. Flax layout conventions hold: convolution
kernels are [kh, kw, in, out] (NHWC inputs), dense kernels [in, out].

`read_exported` loads such a file back (numpy only) as nested dicts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from ssl_jax import checkpoint, config_util
from ssl_jax.methods import method_class

MANIFEST_KEY = "ssl_jax_manifest"  # safetensors metadata key
NPZ_MANIFEST = "__manifest__"  # npz entry
FORMAT_VERSION = 1
SUFFIXES = (".safetensors", ".npz")


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """Nested dicts of arrays -> {"a/b/c": array}, in sorted key order; empty dicts vanish."""
    out = {}
    for key in sorted(tree):
        value = tree[key]
        name = f"{prefix}{key}"
        if "/" in str(key):
            raise ValueError(f"Parameter name {name!r} contains '/', the path separator.")
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "/"))
        else:
            out[name] = np.asarray(value)
    return out


def unflatten(flat: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """{"a/b/c": array} -> nested dicts."""
    tree: dict[str, Any] = {}
    for name, value in flat.items():
        node = tree
        *parents, leaf = name.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def _neutral(array: np.ndarray) -> tuple[np.ndarray, str]:
    """A numpy array every reader understands (bfloat16 and friends become float32), and its original
    dtype's name."""
    name = str(array.dtype)
    if array.dtype.kind == "V" or name in ("bfloat16", "float8_e4m3fn", "float8_e5m2"):
        return np.asarray(array, np.float32), name
    return np.ascontiguousarray(array), name


def manifest_for(
    config: Any, encoder_variables: Mapping[str, Any], *, step: int, input_key: str = "image"
) -> dict[str, Any]:
    """The JSON-able description of an exported encoder (see the module docstring)."""
    cfg = config_util.to_dict(config)
    data, model = cfg.get("data", {}), cfg.get("model", {})
    tensors = {
        name: {"shape": list(a.shape), "dtype": str(a.dtype)}
        for name, a in flatten(encoder_variables).items()
    }
    if input_key == "image":
        input_shape = [data.get("image_size"), data.get("image_size"), data.get("channels")]
    else:
        input_shape = [data.get("seq_len", data.get("max_length"))]
    return {
        "format": "ssl_jax encoder",
        "format_version": FORMAT_VERSION,
        "method": cfg.get("method"),
        "encoder": model.get("encoder"),
        "encoder_kwargs": model.get("encoder_kwargs") or {},
        "activation_dtype": model.get("dtype", "float32"),
        "input_key": input_key,
        "input_shape": input_shape,
        "input_layout": "NHWC uint8, then (x / 255 - mean) / std" if input_key == "image" else "",
        "normalization": {"mean": data.get("mean"), "std": data.get("std")},
        "num_classes": data.get("num_classes"),
        "step": int(step),
        "tensors": tensors,
    }


def write(path: str, encoder_variables: Mapping[str, Any], manifest: Mapping[str, Any]) -> str:
    """Writes the flattened encoder and `manifest` to `path` (.safetensors or .npz); returns the path."""
    suffix = os.path.splitext(path)[1]
    if suffix not in SUFFIXES:
        raise ValueError(f"Export file {path!r} must end in {' or '.join(SUFFIXES)}.")
    tensors = {}
    for name, array in flatten(encoder_variables).items():
        tensors[name], _ = _neutral(array)
    manifest = dict(manifest)
    manifest["tensors"] = {
        name: {**manifest.get("tensors", {}).get(name, {}), "stored_dtype": str(a.dtype)}
        for name, a in tensors.items()
    }
    text = json.dumps(manifest, sort_keys=True)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if suffix == ".safetensors":
        save_file(tensors, path, metadata={MANIFEST_KEY: text})
    else:
        if NPZ_MANIFEST in tensors:
            raise ValueError(f"A parameter is named {NPZ_MANIFEST!r}, the manifest's entry.")
        with open(path, "wb") as f:  # a file object, so numpy does not append ".npz" to the name
            np.savez(f, **tensors, **{NPZ_MANIFEST: np.array(text)})
    return path


def read_exported(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(nested variables {"params", "batch_stats"} of numpy arrays, manifest) of an exported file."""
    if path.endswith(".safetensors"):
        with safe_open(path, framework="numpy") as f:
            manifest = json.loads(f.metadata()[MANIFEST_KEY])
        return unflatten(load_file(path)), manifest
    with np.load(path, allow_pickle=False) as f:
        manifest = json.loads(str(f[NPZ_MANIFEST]))
        flat = {k: f[k] for k in f.files if k != NPZ_MANIFEST}
    return unflatten(flat), manifest


def export_workdir(workdir: str, out: str, *, step: int | None = None) -> dict[str, Any]:
    """`ssl-jax export`: the encoder of WORKDIR's checkpoint (latest, or `step`) -> `out`.

    Returns {"path", "step", "tensors", "parameters"} for the command's summary.
    """
    if os.path.splitext(out)[1] not in SUFFIXES:  # fail before reading the checkpoint
        raise ValueError(f"Export file {out!r} must end in {' or '.join(SUFFIXES)}.")
    config = config_util.load_saved(workdir)
    encoder, step = checkpoint.load_encoder(workdir, step)
    manifest = manifest_for(
        config, encoder, step=step, input_key=method_class(config.method).batch_keys[0]
    )
    write(out, encoder, manifest)
    flat = flatten(encoder)
    return {
        "path": os.path.abspath(out),
        "step": int(step),
        "tensors": len(flat),
        "parameters": int(sum(a.size for k, a in flat.items() if k.startswith("params/"))),
    }
