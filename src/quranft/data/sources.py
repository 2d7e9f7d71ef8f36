"""Opening a configured source split through `datasets`, with the audio left as raw bytes.

A source is a Hub id or a local path (a `save_to_disk` folder, parquet files, an audio folder).
Audio is cast to Audio(decode=False) so that we decode it ourselves: no torchcodec, and an
undecodable row becomes a counted drop instead of an exception inside `datasets`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quranft.config import is_hub_id
from quranft.errors import QuranftError

if TYPE_CHECKING:  # the Snakefile reads local_files at parse time: no numpy or soundfile for it
    from quranft.data.audio import DecodedClip


class SourceError(QuranftError, ValueError):
    """A source that cannot be opened or lacks a configured column; the message names it."""


@dataclass
class OpenedSplit:
    rows: Any  # a datasets.Dataset or IterableDataset yielding dict rows
    num_rows: int | None  # None when a stream does not say how long it is
    description: str  # what was opened, for messages and reports


def resolve_format(source: Mapping[str, Any]) -> str:
    """The concrete reader for a source: hub, disk, parquet or audiofolder."""
    declared = source.get("format", "auto")
    if declared != "auto":
        return declared
    path = Path(source["dataset"])
    if not path.exists():
        if is_hub_id(source["dataset"]):
            return "hub"
        raise SourceError(f"{path}: no such local dataset (and not a Hub id)")
    if path.is_file():
        if path.suffix == ".parquet":
            return "parquet"
        raise SourceError(f"{path}: a local dataset file must be .parquet")
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        return "disk"
    if any(path.rglob("*.parquet")):
        return "parquet"
    return "audiofolder"


def local_files(source: Mapping[str, Any]) -> list[str]:
    """The files of a local source (for Snakemake inputs); empty for a Hub id."""
    if resolve_format(source) == "hub":
        return []
    path = Path(source["dataset"])
    if path.is_file():
        return [str(path)]
    return sorted(str(p) for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))


def _num_rows(dataset: Any, split: str) -> int | None:
    try:
        return len(dataset)
    except TypeError:
        info = getattr(dataset, "info", None)
        splits = getattr(info, "splits", None) or {}
        return splits[split].num_examples if split in splits else None


def _load(source: Mapping[str, Any], kind: str, hf_split: str):
    """The split as `datasets` opens it for the source's format."""
    import datasets

    location = source["dataset"]
    if kind == "hub":
        return datasets.load_dataset(location, name=source.get("config_name"), split=hf_split,
                                     revision=source.get("revision"), streaming=source.get("streaming", True))
    if kind == "disk":
        loaded = datasets.load_from_disk(location)
        if not isinstance(loaded, datasets.DatasetDict):
            return loaded
        if hf_split not in loaded:
            raise SourceError(f"{location}: no split '{hf_split}' (has {', '.join(sorted(loaded))})")
        return loaded[hf_split]
    if kind == "parquet" and Path(location).is_file():
        return datasets.load_dataset("parquet", data_files={hf_split: location}, split=hf_split)
    if kind == "parquet":
        # A folder: datasets infers the splits from file names (data/train-*.parquet, ...).
        return datasets.load_dataset(location, split=hf_split)
    # Streamed: loading an audio folder whole would encode every file through torchcodec.
    return datasets.load_dataset(location, split=hf_split, streaming=True)


def _check_columns(dataset, source: Mapping[str, Any], description: str) -> None:
    columns = set(dataset.column_names or [])
    wanted = [source.get("audio_column", "audio"), source.get("text_column", "text")]
    wanted += [source[optional] for optional in ("id_column", "label_column") if source.get(optional)]
    missing = [name for name in wanted if columns and name not in columns]
    if missing:
        raise SourceError(
            f"{description}: column(s) {', '.join(missing)} not found; "
            f"the dataset has {', '.join(sorted(columns))}"
        )


def open_split(source: Mapping[str, Any], split: str) -> OpenedSplit:
    """Open our split `split` ('train' or 'validation') of a configured source."""
    import datasets

    hf_split = source["splits"][split]
    kind = resolve_format(source)
    description = f"{source['dataset']} [{kind}, split {hf_split}]"
    try:
        dataset = _load(source, kind, hf_split)
    except SourceError:
        raise
    except (FileNotFoundError, ValueError, datasets.exceptions.DatasetNotFoundError) as error:
        raise SourceError(f"cannot open {description}: {error}") from None
    _check_columns(dataset, source, description)
    audio_column = source.get("audio_column", "audio")
    if getattr(dataset.info, "builder_name", None) == "audiofolder":
        # Folder-based datasets yield file paths; keep them as plain strings and read the bytes.
        dataset = dataset.cast_column(audio_column, datasets.Value("string"))
    else:
        dataset = dataset.cast_column(audio_column, datasets.Audio(decode=False))
    return OpenedSplit(dataset, _num_rows(dataset, hf_split), description)


def audio_bytes(value: Any) -> bytes:
    """Raw bytes of an audio value: Audio(decode=False)'s {bytes, path}, or a path (local or remote)."""
    if isinstance(value, Mapping):
        if value.get("bytes"):
            return value["bytes"]
        value = value.get("path")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str) and value:
        if Path(value).is_file():
            return Path(value).read_bytes()
        import fsspec  # a remote path of a streamed Hub dataset (hf://, https://)

        with fsspec.open(value, "rb") as handle:
            return handle.read()
    raise ValueError(f"no audio bytes or path in {type(value).__name__}")


def decode_value(value: Any, rate: int, min_duration: float = 0.0,
                 max_duration: float = float("inf")) -> DecodedClip:
    """A dataset row's audio value decoded and filtered by duration (quranft.data.audio.decode_clip);
    a value with no readable bytes is undecodable."""
    from quranft.data.audio import DecodedClip, decode_clip

    try:
        data = audio_bytes(value)
    except (OSError, ValueError) as error:
        return DecodedClip(None, rate, "undecodable", str(error))
    return decode_clip(data, rate, min_duration, max_duration)
