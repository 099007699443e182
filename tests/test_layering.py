"""Imports run one way only (DESIGN.md, "Layout"): a lower layer never imports a higher one.

Every `import` and `from ... import` in `src/hf_sign` is read with `ast` (absolute and relative, at module level
and inside functions, plus `importlib.import_module("hf_sign...")` with a literal name), resolved to the top-level
part of the package it reaches, and compared with the layer table below.
"""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "hf_sign"

# Highest layer first. A part may import its own layer and every layer below it, never one above.
LAYERS = [
    # the command line and what it drives (the Gradio Space: its logic here, its launcher in spaces/app.py; the
    # converters of other projects' checkpoints, which write pipeline folders)
    {"cli", "cli_hub", "demo", "hub", "space", "convert"},
    # the registry sits with what it registers: the harness dispatches through it
    {"systems", "pipelines", "training", "evaluation"},
    {"models", "data", "render"},
    {"schedulers", "skeletons", "configs"},
]
# Pairs that are forbidden although the layer table would allow them.
FORBIDDEN = {
    ("evaluation", "training"),  # evaluators are never trained inside the harness's import graph
    ("models", "training"),
    ("models", "evaluation"),
}


def _layer_of(part: str) -> int:
    for i, parts in enumerate(LAYERS):
        if part in parts:
            return i
    raise AssertionError(f"hf_sign.{part} is in no layer of tests/test_layering.py::LAYERS; add it where it belongs.")


def _top_parts():
    return sorted(
        p.stem if p.is_file() else p.name
        for p in SRC.iterdir()
        if (p.is_file() and p.suffix == ".py" and p.name != "__init__.py")
        or (p.is_dir() and (p / "__init__.py").is_file())
    )


def _module_name(path: Path, src: Path) -> str:
    rel = path.relative_to(src.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imported_modules(path: Path, src: Path):
    """`(line, dotted name)` of every hf_sign module (or name inside one) that `path` imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module = _module_name(path, src)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level > 1:
                    base = base[: -(node.level - 1)]
                base = ".".join(base)
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            if target == "hf_sign":  # `from .. import training` reaches hf_sign.training
                found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names if alias.name != "*"]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name == "import_module" and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return [(line, name) for line, name in found if name == "hf_sign" or name.startswith("hf_sign.")]


def _part_of(dotted: str, src: Path):
    """The top-level part of hf_sign that `dotted` lies in (`None` for the package root or a name in it)."""
    parts = dotted.split(".")
    if len(parts) < 2:
        return None
    top = parts[1]
    if (src / top / "__init__.py").is_file() or (src / f"{top}.py").is_file():
        return top
    return None  # e.g. `from .. import __version__`


def layer_violations(src: Path = SRC):
    """Every import that goes up the layer table or is in `FORBIDDEN`, as readable strings."""
    problems = []
    for path in sorted(src.rglob("*.py")):
        own = _part_of(_module_name(path, src), src)
        if own is None:
            continue  # hf_sign/__init__.py
        for line, target in _imported_modules(path, src):
            other = _part_of(target, src)
            if other is None or other == own:
                continue
            where = f"{path.relative_to(src.parent)}:{line} imports {target}"
            if _layer_of(other) < _layer_of(own):
                problems.append(
                    f"{where}: {own} (layer {_layer_of(own)}) may not import {other} (layer {_layer_of(other)})"
                )
            elif (own, other) in FORBIDDEN:
                problems.append(f"{where}: {own} may never import {other}")
    return problems


def test_hub_entry_files_import_only_the_pipelines_layer_and_below():
    """`pipelines/*.py` at the repository root are copied into published repos; they sit in the pipelines layer."""
    entry_dir = SRC.parents[1] / "pipelines"
    problems = []
    for path in sorted(entry_dir.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                part = _part_of(name, SRC) if name.startswith("hf_sign.") else None
                if part is not None and _layer_of(part) < _layer_of("pipelines"):
                    problems.append(f"{path.name}:{node.lineno} imports {name}")
    assert not problems, problems


def test_every_part_of_the_package_has_a_layer():
    for part in _top_parts():
        _layer_of(part)


def test_no_import_goes_up_a_layer():
    problems = layer_violations()
    assert not problems, "imports against DESIGN.md's layer order:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "file, source, expected",
    [
        ("models/bad.py", "from ..training.common import PoseTrainer\n", "models (layer 2) may not import training"),
        ("models/bad.py", "from hf_sign.evaluation.dtw import dtw\n", "models (layer 2) may not import evaluation"),
        (
            "evaluation/bad.py",
            "def f():\n    from hf_sign.training import evaluator_trainer\n",
            "evaluation may never import training",
        ),
        ("evaluation/bad.py", "from .. import training\n", "evaluation may never import training"),
        (
            "data/bad.py",
            "import hf_sign.pipelines.pipeline_sign_sald\n",
            "data (layer 2) may not import pipelines (layer 1)",
        ),
        ("skeletons/bad.py", "from ..render import frames\n", "skeletons (layer 3) may not import render (layer 2)"),
        (
            "pipelines/bad.py",
            "import importlib\nimportlib.import_module('hf_sign.cli')\n",
            "pipelines (layer 1) may not import cli",
        ),
        ("data/sub/bad.py", "from ...evaluation.dtw import dtw\n", "data (layer 2) may not import evaluation"),
    ],
)
def test_the_check_catches_upward_imports(tmp_path, file, source, expected):
    """The checker itself: a planted upward import in a copy of the package layout is reported."""
    src = tmp_path / "hf_sign"
    for part in _top_parts():
        target = src / part if (SRC / part).is_dir() else src / f"{part}.py"
        if (SRC / part).is_dir():
            target.mkdir(parents=True)
            (target / "__init__.py").write_text("")
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("")
    (src / "__init__.py").write_text("")
    bad = src / file
    bad.parent.mkdir(parents=True, exist_ok=True)
    (bad.parent / "__init__.py").touch()
    bad.write_text(source)
    problems = layer_violations(src)
    assert len(problems) == 1 and expected in problems[0], problems


def test_allowed_imports_are_not_reported(tmp_path):
    src = tmp_path / "hf_sign"
    for part in ("pipelines", "training", "models", "skeletons"):
        (src / part).mkdir(parents=True)
        (src / part / "__init__.py").write_text("")
    (src / "__init__.py").write_text("")
    (src / "pipelines" / "ok.py").write_text(
        "from ..training import x\nfrom ..models import y\nfrom .. import __version__\n"
    )
    (src / "models" / "ok.py").write_text("from ..skeletons import z\nimport torch\n")
    assert layer_violations(src) == []
