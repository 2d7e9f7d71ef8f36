"""What every result records of where it came from: the git commit, the package versions, the date.

Versions are read from the installed packages' metadata, not by importing them, so that recording
provenance never loads torch, NeMo or Lightning into a process that does not need them.
"""

from __future__ import annotations

import datetime as dt
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = {"torch": "torch", "nemo_toolkit": "nemo_toolkit", "lightning": "lightning"}


def git_commit() -> str | None:
    """The commit of the checkout the package runs from, or None outside a git checkout."""
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                                cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def versions(*extra: str) -> dict[str, str]:
    """Python's version and the installed versions of torch, NeMo, Lightning and `extra` packages."""
    found = {"python": platform.python_version()}
    for key, distribution in {**PACKAGES, **{name: name for name in extra}}.items():
        try:
            found[key] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            found[key] = "not installed"
    return found


def cpu_name() -> str:
    return platform.processor() or platform.machine()


def provenance() -> dict[str, Any]:
    """The commit, the versions and the date (UTC), as a result's `provenance` field."""
    return {"git_commit": git_commit(), "versions": versions(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
