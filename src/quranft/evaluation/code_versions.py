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
import sys
from functools import lru_cache
from pathlib import Path

from quranft.fileio import holds_json, read_json, write_canonical_json

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


def _imports(module: str) -> frozenset[str]:
    """The quranft modules that `module` imports."""
    found = set()
    for package, name in _analysis(_path(module))[1]:
        submodule = f"{package}.{name}" if name else None  # `from quranft.quran import tanzil` imports a module
        found.add(submodule if submodule and _path(submodule) else package)
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
    return _normalised(ast.parse(source, filename=filename))


def _normalised(tree: ast.AST) -> str:
    return ast.dump(_without_docstrings(tree), include_attributes=False)


def _imported_names(tree: ast.AST) -> list[tuple[str, str | None]]:
    """The quranft names a syntax tree imports: (module, None) for `import module`, (module, name)
    for `from module import name` (a submodule or a name defined in the module)."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(alias.name, None) for alias in node.names if alias.name.startswith("quranft")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("quranft"):
            names += [(node.module, alias.name) for alias in node.names]
    return names


def module_hash(module: str) -> str:
    """sha256 (first 16 hex digits) of one module's normalised code (a path relative to the package)."""
    return _analysis(PACKAGE / module)[0]


def _analysis(path: Path) -> tuple[str, tuple[tuple[str, str | None], ...]]:
    """What a module's text gives: the hash of its normalised code and the quranft names it imports."""
    return _analysed(path.read_text(encoding="utf-8"), str(path))


@lru_cache(maxsize=None)
def _analysed(source: str, filename: str) -> tuple[str, tuple[tuple[str, str | None], ...]]:
    """Once per text of a module, and not at all when the cache file holds the text: a parse of the
    Snakefile hashes each benchmark's closure, and the closures share most of their modules."""
    key = hashlib.sha256(source.encode()).hexdigest()
    if key not in _CACHE.entries:
        tree = ast.parse(source, filename=filename)
        names = _imported_names(tree)  # before the docstrings go: _normalised edits the tree
        _CACHE.entries[key] = [hashlib.sha256(_normalised(tree).encode()).hexdigest()[:16], names]
    _CACHE.used.add(key)
    digest, names = _CACHE.entries[key]
    return digest, tuple((package, name) for package, name in names)


class _Cache:
    """What each module text gave, by the sha256 of the text, kept in a file between processes: a
    parse of the Snakefile hashes five closures (37 modules), and parsing and dumping their syntax
    trees took 0.2 s of a 2 s `snakemake -n`. The file holds the entries of the last process that
    used it, under a recipe: the Python version (its syntax trees) and this module's own code (how
    a tree is normalised), so that a change of either parses every module again."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.entries: dict[str, list] = {}
        self.used: set[str] = set()
        self.recipe = hashlib.sha256(f"{sys.version_info[:2]}".encode() + Path(__file__).read_bytes()).hexdigest()

    def load(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            held = read_json(self.path)
        except (OSError, ValueError):
            return  # none yet, or unreadable: a cache, rebuilt by this process
        if isinstance(held, dict) and held.get("recipe") == self.recipe and isinstance(held.get("entries"), dict):
            well_formed = {key: entry for key, entry in held["entries"].items() if _is_entry(entry)}
            self.entries = {**well_formed, **self.entries}

    def save(self) -> None:
        if self.path is None:
            return
        held = {"recipe": self.recipe, "entries": {key: self.entries[key] for key in self.used}}
        if not holds_json(self.path, held):
            write_canonical_json(self.path, held)


def _is_entry(entry) -> bool:
    """Whether a cache file's entry is what _analysed writes: [hash, [[module, name], ...]]."""
    return (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str) and isinstance(entry[1], list)
            and all(isinstance(name, list) and len(name) == 2 for name in entry[1]))


_CACHE = _Cache()


def use_cache(path: str | Path) -> None:
    """Keep what each module's text gives in `path` (rules/common.smk: in Snakemake's own folder of
    the working directory) and read what an earlier process kept there."""
    _CACHE.load(path)


def save_cache() -> None:
    """Write the entries this process used to the cache file given to use_cache, if they changed."""
    _CACHE.save()


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
