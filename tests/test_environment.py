"""The pinned environment: pyproject.toml, the conda env file and the set-up script agree."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

import yaml

from conftest import REPO


def pins(requirements) -> dict[str, str]:
    found = {}
    for line in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]+\])?==([^\s;]+)", line.strip())
        if match:
            found[match.group(1).lower().replace("_", "-")] = match.group(3)
    return found


def test_conda_env_pins_equal_the_pyproject_pins():
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = pins(project["dependencies"])
    assert len(declared) == len(project["dependencies"]), "every dependency is pinned exactly"
    env = yaml.safe_load((REPO / "envs" / "quranft.yaml").read_text(encoding="utf-8"))
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pins(pip_section) == declared
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert python == "python=3.11"


def test_the_environment_that_runs_is_the_pinned_one():
    """What scripts/setup_env.sh installed is what pyproject.toml pins (torch's CPU wheel carries a
    local version, +cpu), test dependencies included."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = pins(project["dependencies"] + project["optional-dependencies"]["test"])
    installed = {name: metadata.version(name).split("+")[0] for name in declared}
    assert installed == declared


def test_every_rule_names_the_conda_env_that_exists():
    for rules in (REPO / "rules").glob("*.smk"):
        for env in re.findall(r'conda:\s*\n\s*"([^"]+)"', rules.read_text(encoding="utf-8")):
            assert (rules.parent / env).resolve().is_file(), f"{rules.name}: {env}"


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"```(?:bash|sh)\n(.*?)```", readme, flags=re.S)[0].strip().splitlines()
    assert commands == ["make demo", "make test"]
    assert "make test" in (REPO / ".ci" / "run").read_text(encoding="utf-8")
