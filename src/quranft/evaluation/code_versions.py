"""Which source files decide a benchmark's scores, and a version hash of each matcher's code.

The sets are derived from the code, not listed by hand: a module's scoring code is the module and
every quranft module it imports, directly or through others, at its top or inside a function
(read from the source with `ast`, nothing imported), less the core modules (errors, config, file
I/O, progress, provenance, plots), which decide no score. So a helper that the matcher or the
transcription starts to use is hashed and declared the day it is imported.

What is hashed is the code's behaviour, not its text: each module's syntax tree without its
docstrings, so that a comment, a docstring or a reformatting changes no version and re-runs no
benchmark, while any change to what the code does (a constant, a statement, a name) does.

The benchmark rules take a record of these hashes as an input (rules/common.smk, code_record:
editing what the code does re-scores, never retrains), and every benchmark JSON records each
matcher's hash, so that the leaderboard compares only benchmarks scored by the same code. Kept
free of heavy imports: the Snakefile reads it on every parse.
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent
CORE = {"quranft.errors", "quranft.config", "quranft.fileio", "quranft.progress", "quranft.provenance",
        "quranft.plots", "quranft.cli", "quranft"}

# What decides each matcher's predictions (the CTC matcher re-ranks the text matcher's
# candidates, so its closure holds the text matcher's code) and their scores.
MATCHERS = {"text": "quranft.matching.text_matcher", "ctc": "quranft.matching.ctc_matcher"}
SCORING = "quranft.matching.scoring"
# The benchmarks themselves: their closures hold the matchers, the scoring, the transcription, the
# audio decoding and (ASR) the normalisations.
BENCHMARK = "quranft.evaluation.benchmark"
ASR_BENCHMARK = "quranft.evaluation.asr_benchmark"
# The long-form benchmark: sessions heard whole and streamed, and their scoring.
LONGFORM = "quranft.evaluation.longform"
# What makes an export: the graph, its quantization and the parity and threshold it records (its
# closure holds the model loading, the windowed path and the matchers the threshold is chosen by);
# the front end every export reuses is the graph module's alone.
EXPORT = "quranft.deploy.export"
FRONT_END_EXPORT = "quranft.deploy.graph"


def _path(module: str) -> Path | None:
    base = PACKAGE.parent / Path(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


@lru_cache(maxsize=None)
def _imports(module: str) -> frozenset[str]:
    """The quranft modules that `module` imports."""
    found = set()
    for node in ast.walk(ast.parse(_path(module).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("quranft")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("quranft"):
            for alias in node.names:  # `from quranft.quran import tanzil` imports a module
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if _path(submodule) else node.module)
    return frozenset(name for name in found if _path(name) is not None)


def closure(*modules: str) -> list[str]:
    """The modules and every quranft module they import, transitively, less the core; as paths
    relative to the package (matching/scoring.py), sorted."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        module = todo.pop()
        if module in seen or module in CORE:
            continue
        seen.add(module)
        todo += _imports(module)
    return sorted(str(_path(name).relative_to(PACKAGE)) for name in seen)


def matcher_modules(matcher: str) -> list[str]:
    """The files whose code decides one matcher's predictions and scores."""
    return closure(MATCHERS[matcher], SCORING)


def _without_docstrings(tree: ast.AST) -> ast.AST:
    """The tree with the docstring of the module and of every class and function removed."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def normalised_code(source: str, filename: str = "<source>") -> str:
    """What a module's source does, as text: its syntax tree without docstrings and without line
    numbers (comments, blank lines and formatting are not in a syntax tree)."""
    tree = ast.parse(source, filename=filename)
    return ast.dump(_without_docstrings(tree), include_attributes=False)


def module_hash(module: str) -> str:
    """sha256 (first 16 hex digits) of one module's normalised code (a path relative to the package)."""
    path = PACKAGE / module
    return _normalised_hash(path.read_text(encoding="utf-8"), str(path))


@lru_cache(maxsize=None)
def _normalised_hash(source: str, filename: str) -> str:
    """Once per text of a module: a parse of the Snakefile hashes each benchmark's closure, and the
    closures share most of their modules."""
    return hashlib.sha256(normalised_code(source, filename).encode()).hexdigest()[:16]


def module_hashes(module: str) -> dict[str, str]:
    """Each module of `module`'s closure and the hash of its normalised code: what a benchmark rule
    takes as its code input (a record that changes only when what the code does changes)."""
    return {name: module_hash(name) for name in closure(module)}


def code_hash(modules) -> str:
    """sha256 (first 16 hex digits) over the named modules' paths and normalised code, in the order given."""
    digest = hashlib.sha256()
    for name in modules:
        digest.update(name.encode())
        digest.update(module_hash(name).encode())
    return digest.hexdigest()[:16]


def scorer_version(module: str = BENCHMARK) -> str:
    """The version of everything that decides a benchmark's figures (its closure: the matchers, the
    scoring, the transcription, the model loading, the audio decoding, the normalisations)."""
    return code_hash(closure(module))


def matcher_versions() -> dict[str, str]:
    """Each matcher's version: the hash of the code that decides its predictions and scores."""
    return {name: code_hash(matcher_modules(name)) for name in MATCHERS}
