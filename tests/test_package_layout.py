"""The package's layout: subpackages by stage whose imports point down only, no import circle, and
what a user runs after training (re-scoring, the text matcher) free of torch and NeMo."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DEMO, REPO

PACKAGE = REPO / "src" / "quranft"
# Lower layers first; a module may import only from layers below its own, or from its own
# subpackage. Subpackages on one layer (models and matching; training, evaluation and deploy) never
# import each other.
CORE = {"quranft.errors", "quranft.config", "quranft.fileio", "quranft.progress", "quranft.provenance",
        "quranft.plots"}
LAYERS = (
    {"core"},
    {"quranft.quran"},
    {"quranft.data"},
    {"quranft.models", "quranft.matching"},
    {"quranft.training", "quranft.evaluation", "quranft.deploy"},
    {"quranft.commands"},
    {"quranft.cli"},
    {"quranft.__main__"},
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path) -> set[str]:
    """Every quranft module `path` imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("quranft")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("quranft"):
            known = modules()
            for alias in node.names:  # `from quranft.models import nemo_models` imports a module
                found.add(f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module)
    return found


def group(module: str) -> str:
    """The subpackage a module belongs to (quranft.data.audio -> quranft.data), or the module
    itself; the core modules are one group."""
    parts = module.split(".")
    name = ".".join(parts[:2]) if (PACKAGE / parts[1]).is_dir() else module
    return "core" if name in CORE else name


def layer(module: str) -> int:
    return next(number for number, members in enumerate(LAYERS) if group(module) in members)


def test_every_module_belongs_to_a_layer():
    assert [name for name in modules() if name != "quranft" and not any(group(name) in m for m in LAYERS)] == []


def test_imports_point_down_only():
    wrong = []
    for name, path in modules().items():
        for target in imports(path):
            if group(target) != group(name) and layer(target) >= layer(name):
                wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_no_import_circle():
    graph = {name: {target for target in imports(path) if target in modules()} for name, path in modules().items()}
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            pytest.fail("import circle: " + " -> ".join(trail[trail.index(name):] + [name]))
        if name in done:
            return
        for target in sorted(graph[name]):
            visit(target, trail + [name])
        done.add(name)

    for name in graph:
        visit(name, [])


def test_subpackages_are_empty_so_that_parse_time_imports_stay_light():
    for init in PACKAGE.glob("*/__init__.py"):
        assert init.read_text(encoding="utf-8") == "", init


def imported_by(code: str) -> set[str]:
    """The modules in sys.modules after running `code` in a fresh interpreter, and their top-level
    packages."""
    result = subprocess.run([sys.executable, "-c", f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
                            capture_output=True, text=True, cwd=REPO, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert result.returncode == 0, result.stderr[-3000:]
    names = set(json.loads(result.stdout.splitlines()[-1]))
    return names | {name.split(".")[0] for name in names}


def test_evaluation_imports_no_training_module():
    evaluation = [name for name in modules() if name.startswith("quranft.evaluation.")]
    loaded = imported_by("\n".join(f"import {name}" for name in evaluation))
    assert {name for name in loaded if name.startswith("quranft.evaluation")} >= set(evaluation)
    assert {name for name in loaded if name.startswith("quranft.training")} == set()


def test_rescoring_with_the_text_matcher_runs_without_torch_or_nemo(tmp_path):
    corpus = json.loads((DEMO / "benchmark" / "manifest.json").read_text(encoding="utf-8"))["samples"]
    samples = corpus[:3]
    transcripts = tmp_path / "transcripts.jsonl"
    transcripts.write_text("".join(json.dumps({"id": s["id"], "text": "قل هو الله احد"}) + "\n" for s in samples),
                           encoding="utf-8")
    output = tmp_path / "preds.json"
    loaded = imported_by(
        "from quranft.evaluation.rescore import rescore\n"
        f"rescore({str(DEMO / 'benchmark')!r}, {str(transcripts)!r}, 'text', {str(output)!r})")
    assert not {"torch", "nemo", "lightning"} & loaded
    rows = {row["id"]: row for row in json.loads(output.read_text(encoding="utf-8"))["rows"]}
    assert rows[samples[0]["id"]]["matchers"]["text"]["predicted"] == [[112, 1]]
    assert len(rows) == len(corpus)
    assert sum(row["error_kind"] == "no_transcript" for row in rows.values()) == len(corpus) - 3


def test_the_text_matcher_and_the_ctc_matchers_module_load_without_torch():
    loaded = imported_by("import quranft.matching.text_matcher, quranft.matching.ctc_matcher, quranft.matching.scoring")
    assert not {"torch", "nemo", "lightning"} & loaded
