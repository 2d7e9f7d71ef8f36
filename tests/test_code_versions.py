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
