"""The one-way import rule of ARCHITECTURE.md, read off the source by parsing every import
(function-level ones included), so a layer that reaches upward fails here rather than in review:
losses <- models <- methods <- train / transfer <- cli."""

import ast
import os
import sys

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ssl_jax")

# Layer -> the ssl_jax modules it must never import (those above it).
ABOVE = {
    "models": ("methods", "train", "transfer", "cli", "optim", "checkpoint", "config_util"),
    "methods": ("train", "transfer", "cli", "optim", "checkpoint", "config_util"),
    "transfer": ("train", "cli"),
    "train": ("cli",),
}
# Losses import only these (besides the standard library and other losses).
LOSSES_MAY_IMPORT = ("jax", "numpy", "optax", "ssl_jax.parallel", "ssl_jax.losses")
# Method I/O that issue #17 part 2 still has to move above the methods (each entry must still be
# there: remove it when its import goes, so the list only shrinks).
KNOWN_METHOD_IO = {
    ("future_prediction", "ssl_jax.config_util"),
    ("future_prediction", "ssl_jax.checkpoint"),
}


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
    found, known = set(), set()
    for path in layer_files(layer):
        stem = os.path.splitext(os.path.basename(path))[0]
        for module in imported_modules(path):
            if within(module, forbidden) and not module.endswith(".__future__"):
                pair = (stem, ".".join(module.split(".")[:2]))
                (known if layer == "methods" and pair in KNOWN_METHOD_IO else found).add(pair)
    assert not found, f"{layer} imports from a layer above it: {sorted(set(found))}"
    if layer == "methods":
        assert known == KNOWN_METHOD_IO, (
            f"fixed, remove from KNOWN_METHOD_IO: {KNOWN_METHOD_IO - known}"
        )


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
