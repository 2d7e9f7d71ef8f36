"""Which source files decide a benchmark's scores, and a version hash of each matcher's code.

The benchmark rule lists these files as inputs (editing a matcher re-scores, never retrains), and
every benchmark JSON records the hashes, so that the leaderboard compares only benchmarks scored by
the same code. Kept free of heavy imports: the Snakefile reads it on every parse.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent

# The modules each matcher's predictions depend on, relative to the package (the CTC matcher
# re-ranks the text matcher's candidates, so it depends on the text matcher's code too).
TEXT_MATCHER_MODULES = ("quran/arabic.py", "quran/tanzil.py", "matching/verse_index.py", "matching/text_matcher.py")
MATCHER_MODULES = {
    "text": TEXT_MATCHER_MODULES,
    "ctc": (*TEXT_MATCHER_MODULES, "quran/tokenizer_coverage.py", "matching/ctc_matcher.py"),
}
SCORING_MODULES = ("matching/scoring.py",)
# The ASR benchmark's scoring: its error rates and the two normalisations they are computed after.
ASR_MODULES = ("evaluation/asr_benchmark.py", "quran/arabic.py")


def module_files(modules) -> list[str]:
    return [str(PACKAGE / name) for name in modules]


def scoring_code_files() -> list[str]:
    """Every file whose edit changes a benchmark's scores (matchers and scoring), sorted."""
    names = {name for modules in MATCHER_MODULES.values() for name in modules} | set(SCORING_MODULES)
    return module_files(sorted(names))


def asr_code_files() -> list[str]:
    """Every file whose edit changes an ASR benchmark's figures."""
    return module_files(ASR_MODULES)


def code_hash(modules) -> str:
    """sha256 (first 16 hex digits) over the named modules' bytes, in the order given."""
    digest = hashlib.sha256()
    for name, path in zip(modules, module_files(modules)):
        digest.update(name.encode())
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]


def matcher_versions() -> dict[str, str]:
    """Each matcher's version: the hash of its modules and of the scoring code."""
    return {name: code_hash((*modules, *SCORING_MODULES)) for name, modules in MATCHER_MODULES.items()}
