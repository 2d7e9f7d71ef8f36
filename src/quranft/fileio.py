"""Reading and writing outputs: atomically (a reader sees the old file or the complete new one,
never a part), JSON and JSONL, staged folders, and file hashes."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from quranft.errors import QuranftError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; outputs are as readable as any file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    """Pretty, UTF-8 (Arabic stays readable), key order as given, atomically."""
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def canonical_json(obj: Any) -> str:
    """`obj` as canonical JSON text (sorted keys): equal objects give equal text."""
    return json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def holds_json(path: str | Path, obj: Any) -> bool:
    """Whether the file at `path` holds exactly `obj` as canonical JSON (False when it is missing,
    or is not text)."""
    try:
        return Path(path).read_text(encoding="utf-8") == canonical_json(obj)
    except (FileNotFoundError, UnicodeDecodeError):
        return False


def write_canonical_json(path: str | Path, obj: Any) -> None:
    """Write `obj` as canonical JSON (atomically)."""
    atomic_write_text(path, canonical_json(obj))


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def read_json_list(path: Path, key: str, error: type[Exception]) -> list:
    """The list under `key` of the JSON object in `path`; `error` naming the file when it is not
    valid JSON or holds no such list (FileNotFoundError goes through, for the caller to answer)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as problem:
        raise error(f"{path}: not valid JSON ({problem.msg}, line {problem.lineno})") from None
    entries = document.get(key) if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise error(f"{path}: expected an object with a '{key}' list")
    return entries


def write_jsonl(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> int:
    """Write one JSON object per line (NeMo's manifest format), atomically; return the count."""
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not a JSON object: {error.msg}") from None
    return rows


def replace_dir(staging: str | Path, target: str | Path) -> None:
    """Put the complete folder `staging` in the place of `target` (a reader sees the old folder or
    the new one, never a mix); `staging` must sit beside `target`, on the same file system."""

    staging, target = Path(staging), Path(target)
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged_dir(target: str | Path) -> Iterator[Path]:
    """A fresh folder beside `target` to write a whole output folder into: when the block completes
    it takes `target`'s place (replace_dir); when the block fails it is removed, and `target` stays
    as it was."""
    target = Path(target)
    staging = target.with_name(f".{target.name}.staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replace_dir(staging, target)


def manifest_hash(manifest: str | Path, root: str | Path, files: Iterable[str]) -> str:
    """sha256 over a manifest's bytes and every file it names (relative to `root`), each by its name
    and its content's hash (a missing one by its name alone): a test set's identity."""
    digest = hashlib.sha256(Path(manifest).read_bytes())
    for name in files:
        path = Path(root) / name
        digest.update(name.encode())
        if path.is_file():
            digest.update(bytes.fromhex(sha256_file(path)))
    return digest.hexdigest()


def sha256_file(path: str | Path) -> str:
    """The sha256 of a file's bytes (hex), read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class NemoArchiveError(QuranftError, ValueError):
    """A file given as a .nemo that is not a complete .nemo archive; the message names it."""


NEMO_MEMBERS = ("model_config.yaml", "model_weights.ckpt")


def check_nemo_archive(path: str | Path) -> None:
    """Raise NemoArchiveError unless `path` is a complete .nemo archive: a tar file (plain or
    compressed) that holds model_config.yaml and model_weights.ckpt, none of its members cut short.
    Reads the members' headers, not their data."""
    path = Path(path)
    if not path.is_file():
        raise NemoArchiveError(f"{path}: no such .nemo file")
    size = path.stat().st_size
    try:
        with tarfile.open(path) as archive:
            members = archive.getmembers()
            compressed = not isinstance(archive.fileobj, io.BufferedReader)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        reason = ("neither a tar file nor a compressed one" if "could not be opened" in str(error)
                  else " ".join(str(error).split()))
        raise NemoArchiveError(f"{path}: not a .nemo archive ({reason})") from None
    names = {Path(member.name).name for member in members}
    missing = [name for name in NEMO_MEMBERS if name not in names]
    if missing:
        raise NemoArchiveError(f"{path}: not a .nemo archive (it has no {' and no '.join(missing)})")
    cut = next((m.name for m in members if not compressed and m.offset_data + m.size > size), None)
    if cut is not None:
        raise NemoArchiveError(f"{path}: a truncated .nemo archive ({cut} is cut short)")
