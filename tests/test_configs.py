"""Every configs/ file: its docstring gives the command that runs it and the expected result, and the
results files it names exist and hold that config's result; the shared bases are not configs."""

from __future__ import annotations

import ast
import glob
import os
import re

import pytest

from ssl_jax import config_util

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(
    p
    for p in glob.glob(os.path.join(ROOT, "configs", "*.py"))
    if not os.path.basename(p).startswith("_")
)
RESULT_FILE = re.compile(r"benchmarks/results/[\w.-]+\.(?:md|json|png)")


def _docstring(path: str) -> str:
    with open(path) as f:
        return ast.get_docstring(ast.parse(f.read())) or ""


def _expected_paragraph(doc: str) -> str:
    """From the line that starts with "Expected result:" to the next blank line or variant list."""
    lines = doc.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("Expected result:")), None)
    assert start is not None, 'no line starts with "Expected result:"'
    paragraph = []
    for line in lines[start:]:
        if not line.strip() or (paragraph and line.startswith("Variant")):
            break
        paragraph.append(line)
    return " ".join(paragraph)


def test_there_are_configs():
    assert len(CONFIGS) >= 45


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_docstring_gives_the_command_and_the_expected_result(path):
    name = os.path.basename(path)
    doc = _docstring(path)
    command = (
        rf"^\s*ssl-jax pretrain (?:--distributed )?--config configs/{re.escape(name)}(?::\w+)?\s"
    )
    assert re.search(command, doc, re.MULTILINE), f"{name}: no `ssl-jax pretrain --config` line"
    expected = _expected_paragraph(doc)
    named = RESULT_FILE.findall(expected)
    assert re.search(r"\d%", expected) or named, (
        f"{name}: the expected result names neither a number nor a benchmarks/results file: {expected}"
    )
    for rel in RESULT_FILE.findall(doc):
        assert os.path.isfile(os.path.join(ROOT, rel)), f"{name} names {rel}, which does not exist"
    # "see benchmarks/results/X": X (one of those named) holds this config's own result.
    seen = re.search(r"\bsee\b.*", expected)
    if seen and named:
        texts = [open(os.path.join(ROOT, rel)).read() for rel in named if rel.endswith(".md")]
        assert any(f"configs/{name}" in text for text in texts), (
            f"{name}: none of {named} records configs/{name}"
        )


def test_the_shared_bases_are_not_configs(tmp_path):
    with pytest.raises(AttributeError, match="defines no get_config"):
        config_util.load_config(os.path.join(ROOT, "configs", "_datasets.py"))


def test_a_config_imports_its_base_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = config_util.load_config(os.path.join(ROOT, "configs", "byol_cifar10.py:smoke"))
    assert (config.method, config.data.tfds_name, config.num_steps) == ("byol", "cifar10", 3)
    with pytest.raises(ValueError, match=r"Unknown variant 'tiny'; valid: smoke\."):
        config_util.load_config(os.path.join(ROOT, "configs", "byol_cifar10.py:tiny"))
