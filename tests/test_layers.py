"""The import graph: no module reaches itself, and the declared layers hold."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

grimp = pytest.importorskip("grimp")


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.find_modules_directly_imported_by(node):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycles() -> None:
    graph = grimp.build_graph("squeezelab")  # imports inside functions count too
    assert _cycles(graph) == []


def test_a_planted_cycle_is_found() -> None:
    graph = grimp.ImportGraph()
    for a, b in (("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")):
        graph.add_import(importer=a, imported=b)
    assert _cycles(graph) == [["p.a", "p.b", "p.c"]]


def test_layer_contracts_are_kept() -> None:
    lint = shutil.which("lint-imports")
    if lint is None:
        pytest.skip("import-linter is not installed")
    root = Path(__file__).resolve().parents[1]  # where pyproject.toml declares the contracts
    proc = subprocess.run([lint], cwd=root, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_the_type_checker_sees_every_run_field() -> None:
    """RunConfig is built from the model registry at run time; what a type checker reads is
    a class over the families' option classes: both must name the same fields."""
    import dataclasses

    from squeezelab.models.alexnet import AlexNetOptions
    from squeezelab.models.registry import all_options
    from squeezelab.models.squeezenet import SqueezeNetOptions
    from squeezelab.training.config import RunConfig, _RunFields

    seen = {f.name for c in (_RunFields, SqueezeNetOptions, AlexNetOptions)
            for f in dataclasses.fields(c)}  # fmt: skip
    assert seen == {f.name for f in dataclasses.fields(RunConfig)}
    assert set(all_options()) <= seen


def test_the_command_line_offers_every_executor() -> None:
    from squeezelab.cli.studies import EXECUTOR_NAMES
    from squeezelab.studies.executors import EXECUTORS

    assert tuple(EXECUTORS) == EXECUTOR_NAMES
