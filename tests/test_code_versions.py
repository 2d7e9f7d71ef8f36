"""The code versions that decide re-scoring: what a module does, not how its text reads."""

from __future__ import annotations

import pytest

from quranft.evaluation.code_versions import BENCHMARK, closure, module_hashes, normalised_code

MODULE = '''"""A module."""

import math

THRESHOLD = 0.5


class Matcher:
    """Finds verses."""

    def score(self, values, *, scale=2):
        """The score."""
        return [math.exp(v) * scale for v in values if v > THRESHOLD]


async def fetch(path):
    """Reads a file."""
    return open(path).read()
'''

# Edits that change no behaviour: docstrings, comments, blank lines, line breaks, quotes.
SAME = {
    "docstrings": lambda s: s.replace('"""A module."""', '"""Another text."""').replace(
        '"""The score."""', '"""The score,\n        over two lines."""').replace('"""Reads a file."""', ""),
    "comments and blank lines": lambda s: s.replace("THRESHOLD = 0.5", "# why 0.5\n\nTHRESHOLD = 0.5  # tuned"),
    "formatting": lambda s: s.replace("[math.exp(v) * scale for v in values if v > THRESHOLD]",
                                      "[\n            math.exp(v)*scale\n            for v in values\n"
                                      "            if v > THRESHOLD\n        ]").replace(
        "open(path).read()", "open( path ).read( )"),
    "quotes": lambda s: s.replace('"""Finds verses."""', "'Finds verses.'"),
}
# Edits that change what the code does.
CHANGED = {
    "a constant": lambda s: s.replace("THRESHOLD = 0.5", "THRESHOLD = 0.6"),
    "a default": lambda s: s.replace("scale=2", "scale=3"),
    "a name": lambda s: s.replace("math.exp(v)", "math.log(v)"),
    "a statement": lambda s: s + "\nTHRESHOLD = 1\n",
    "a string that is not a docstring": lambda s: s.replace("import math", "import math\nNAME = 'x'"),
    "a docstring turned into code": lambda s: s.replace('"""The score."""', 'print("The score.")'),
}


@pytest.mark.parametrize("edit", list(SAME))
def test_an_edit_that_changes_no_behaviour_keeps_the_normalised_code(edit):
    assert normalised_code(SAME[edit](MODULE)) == normalised_code(MODULE)


@pytest.mark.parametrize("edit", list(CHANGED))
def test_an_edit_of_what_the_code_does_changes_the_normalised_code(edit):
    assert normalised_code(CHANGED[edit](MODULE)) != normalised_code(MODULE)


def test_a_function_of_a_docstring_alone_is_a_function_that_does_nothing():
    assert normalised_code('def f():\n    """Nothing."""\n') == normalised_code("def f():\n    pass\n")


def test_the_benchmark_code_record_holds_each_module_of_the_closure():
    hashes = module_hashes(BENCHMARK)
    assert sorted(hashes) == closure(BENCHMARK)
    assert {"models/nemo_models.py", "matching/scoring.py", "data/audio.py"} <= set(hashes)
    assert all(len(value) == 16 for value in hashes.values()) and len(set(hashes.values())) == len(hashes)


# A process that hashes the benchmark's closure with a cache file, as a parse of the Snakefile does
# (rules/common.smk), and says which module files it parsed.
HASHING = """
import ast, json, sys
from quranft.evaluation import code_versions

parsed = []
parse = ast.parse
ast.parse = lambda source, filename="<unknown>", **kw: parsed.append(filename) or parse(source, filename, **kw)
code_versions.use_cache(sys.argv[1])
hashes = code_versions.module_hashes(code_versions.BENCHMARK)
code_versions.save_cache()
print(json.dumps({"hashes": hashes, "parsed": parsed}))
"""


def test_the_cache_file_spares_the_parse_of_every_module_but_an_edited_one(tmp_path):
    import json
    import shutil
    import subprocess
    import sys

    from conftest import REPO

    shutil.copytree(REPO / "src" / "quranft", tmp_path / "src" / "quranft")  # a package of its own, to edit
    cache = tmp_path / "cache" / "code_hashes.json"

    def hashing() -> dict:
        run = subprocess.run([sys.executable, "-c", HASHING, str(cache)], capture_output=True, text=True,
                             check=True, env={"PYTHONPATH": str(tmp_path / "src")}, timeout=120)
        return json.loads(run.stdout)

    first = hashing()
    assert len(first["parsed"]) == len(first["hashes"]) == len(closure(BENCHMARK)) and cache.is_file()
    assert hashing() == {"hashes": first["hashes"], "parsed": []}  # every text found in the cache

    scoring = tmp_path / "src" / "quranft" / "matching" / "scoring.py"
    scoring.write_text(scoring.read_text(encoding="utf-8") + "\nEDITED = 1\n", encoding="utf-8")
    edited = hashing()
    assert edited["parsed"] == [str(scoring)]
    assert {k for k in first["hashes"] if edited["hashes"][k] != first["hashes"][k]} == {"matching/scoring.py"}

    # a cache of another recipe (another Python, or another normalisation), or an unreadable one,
    # is not used, and is written anew
    held = json.loads(cache.read_text())
    mangled = {key: [3, "x"] for key in held["entries"]}  # hand-edited entries are not used either
    for text in (json.dumps({**held, "recipe": "another"}), json.dumps({**held, "entries": mangled}), "{"):
        cache.write_text(text, encoding="utf-8")
        again = hashing()
        assert again["hashes"] == edited["hashes"] and len(again["parsed"]) == len(edited["hashes"])
        assert hashing()["parsed"] == []
