"""The one-way import rule of ARCHITECTURE.md, read off the source by parsing every import
(function-level ones included), so a layer that reaches upward fails here rather than in review:
losses <- models <- methods <- train / transfer <- cli. Also parsed: no method reads a data source,
and every method that runs is built through the data-input hook (ssl_jax.method_inputs)."""

import ast
import os
import sys

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ssl_jax")

# Layer -> the ssl_jax modules it must never import (those above it).
ABOVE = {
    "models": ("methods", "train", "transfer", "cli", "optim", "checkpoint", "config_util"),
    "methods": ("train", "transfer", "cli", "optim", "checkpoint", "config_util", "method_inputs"),
    "method_inputs": ("train", "transfer", "cli"),
    "transfer": ("train", "cli"),
    "train": ("cli",),
}
# Losses import only these (besides the standard library and other losses).
LOSSES_MAY_IMPORT = ("jax", "numpy", "optax", "ssl_jax.parallel", "ssl_jax.losses")


def imported_modules(path):
    """Every module `path` imports, absolute, at any depth of the file."""
    folders = os.path.normpath(os.path.dirname(path)).split(os.sep)
    package = ".".join(folders[len(folders) - 1 - folders[::-1].index("ssl_jax") :])
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            yield from (f"{base}.{alias.name}" for alias in node.names)


def layer_files(layer):
    if os.path.isdir(os.path.join(ROOT, layer)):
        folder = os.path.join(ROOT, layer)
        return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".py"))
    return [os.path.join(ROOT, f"{layer}.py")]


def within(module, names):
    return any(module == n or module.startswith(n + ".") for n in names)


@pytest.mark.parametrize("layer", sorted(ABOVE))
def test_no_layer_imports_a_layer_above_it(layer):
    forbidden = tuple(f"ssl_jax.{name}" for name in ABOVE[layer])
    found = {
        (os.path.splitext(os.path.basename(path))[0], ".".join(module.split(".")[:2]))
        for path in layer_files(layer)
        for module in imported_modules(path)
        if within(module, forbidden) and not module.endswith(".__future__")
    }
    assert not found, f"{layer} imports from a layer above it: {sorted(found)}"


def names_used(path):
    """Every name `path` refers to: bare names, attributes (`data.get_source`) and imported names."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            yield node.id
        elif isinstance(node, ast.Attribute):
            yield node.attr
        elif isinstance(node, ast.Import | ast.ImportFrom):
            yield from (alias.name.split(".")[-1] for alias in node.names)


def python_files(folder):
    for parent, _, files in os.walk(folder):
        yield from (os.path.join(parent, f) for f in sorted(files) if f.endswith(".py"))


def test_no_method_reads_a_data_source():
    readers = sorted(
        os.path.basename(path)
        for path in layer_files("methods")
        if "get_source" in set(names_used(path))
    )
    assert not readers, f"methods reading data (ask for it by Method.data_inputs): {readers}"


def test_every_method_that_runs_is_built_with_its_data_inputs():
    """Only ssl_jax.method_inputs calls `get_method`: the package and the benchmarks build methods with
    `method_inputs.build_method`, which binds what each method's `data_inputs` names."""
    benchmarks = os.path.join(os.path.dirname(ROOT), "benchmarks")
    allowed = {os.path.join(ROOT, "method_inputs.py"), os.path.join(ROOT, "methods", "__init__.py")}
    callers = sorted(
        os.path.relpath(path, os.path.dirname(ROOT))
        for folder in (ROOT, benchmarks)
        for path in python_files(folder)
        if path not in allowed and "get_method" in set(names_used(path))
    )
    assert not callers, f"build methods with ssl_jax.method_inputs.build_method: {callers}"


def test_losses_import_only_jax_numpy_optax_and_parallel():
    stdlib = sys.stdlib_module_names
    found = sorted(
        {
            (os.path.basename(path), module)
            for path in layer_files("losses")
            for module in imported_modules(path)
            if module.split(".")[0] not in stdlib and not within(module, LOSSES_MAY_IMPORT)
        }
    )
    assert not found, f"losses import beyond jax / numpy / optax / ssl_jax.parallel: {found}"


def test_the_parser_sees_function_level_and_relative_imports(tmp_path):
    pkg = tmp_path / "ssl_jax" / "methods"
    pkg.mkdir(parents=True)
    (pkg / "x.py").write_text("def f():\n    from ssl_jax import train\n\nfrom . import base\n")
    modules = set(imported_modules(str(pkg / "x.py")))
    assert {"ssl_jax.train", "ssl_jax.methods.base"} <= modules
