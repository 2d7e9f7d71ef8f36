"""Loading and validating the workflow configuration against its JSON schema.

Kept free of heavy imports: the Snakefile calls it on every parse, dry runs included.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from quranft.errors import QuranftError

SCHEMA_RESOURCE = "schema/config.schema.yaml"
# libyaml's parser where PyYAML was built with it (the same safe constructors, ten times faster than
# the pure-Python one: a parse of the Snakefile reads the schemas and every trial file).
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(text: Any) -> Any:
    """YAML text (or an open file) as `yaml.safe_load` reads it."""
    return yaml.load(text, Loader=_SAFE_LOADER)


class ConfigError(QuranftError, ValueError):
    """A configuration that does not satisfy the schema; the message names the key."""


def load_schema(resource: str = SCHEMA_RESOURCE) -> dict[str, Any]:
    """The schema, the caller's own copy (parsed once per process: a parse of the Snakefile
    validates the config and every trial file against the schemas)."""
    return copy.deepcopy(_parsed_schema(resource))


@functools.lru_cache(maxsize=None)
def _parsed_schema(resource: str) -> dict[str, Any]:
    return parse_yaml(resources.files("quranft").joinpath(resource).read_text(encoding="utf-8"))


def schema_default(*keys: str) -> Any:
    """The schema's default of a config key, given as its path (schema_default("export",
    "max_seqacc_loss")): a command's default where it is run without the workflow's config."""
    node: Mapping[str, Any] = load_schema()
    for key in keys:
        node = node["properties"][key]
    return node["default"]


def _key(path) -> str:
    parts = [str(p) for p in path]
    return ".".join(parts) if parts else "(top level)"


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def describe_error(error: jsonschema.ValidationError, what: str = "config key") -> str:
    """One line naming the offending key (as `what 'key'`) and what the schema expected there."""
    key = _key(error.absolute_path)
    validator = error.validator
    if validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        where = _key(list(error.absolute_path) + [extra[0]]) if extra else key
        return f"{what} '{where}' is unknown; expected one of: {', '.join(allowed)}"
    if validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"{what} '{_key(list(error.absolute_path) + [missing])}' is missing (required)"
    if validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return (
            f"{what} '{key}' must be of type {expected}, "
            f"got {_type_name(error.instance)} {error.instance!r}"
        )
    if validator == "enum":
        return f"{what} '{key}' must be one of {error.validator_value}, got {error.instance!r}"
    if validator == "contains" and "const" in error.validator_value:
        return f"{what} '{key}' must include {error.validator_value['const']!r}, got {error.instance!r}"
    if validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        relation = {
            "minimum": ">=",
            "maximum": "<=",
            "exclusiveMinimum": ">",
            "exclusiveMaximum": "<",
        }[validator]
        return f"{what} '{key}' must be {relation} {error.validator_value}, got {error.instance!r}"
    return f"{what} '{key}': {error.message}"


def first_error(schema: Mapping[str, Any], instance: Any, what: str = "config key") -> str | None:
    """The message of the most basic schema violation of `instance`, or None when it is valid."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: (len(e.absolute_path), list(e.path)))
    return describe_error(errors[0], what) if errors else None


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """The schema a $ref points at (a JSON pointer into `root`, such as #/$defs/source)."""
    while "$ref" in schema:
        node = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def fill_defaults(schema: Mapping[str, Any], instance: Any, root: Mapping[str, Any]) -> None:
    """Insert the schema's defaults into `instance` in place, recursing through objects and the
    items of arrays."""
    schema = _resolve(schema, root)
    if isinstance(instance, list) and isinstance(schema.get("items"), Mapping):
        for item in instance:
            fill_defaults(schema["items"], item, root)
    if not isinstance(instance, dict):
        return
    properties = schema.get("properties", {})
    for name, sub in properties.items():
        sub = _resolve(sub, root)
        if name not in instance and "default" in sub:
            instance[name] = copy.deepcopy(sub["default"])
        if name in instance:
            fill_defaults(sub, instance[name], root)


def _check_relations(config: Mapping[str, Any]) -> None:
    """Constraints between keys that a JSON schema cannot express."""
    data = config["data"]
    if data["min_duration"] >= data["max_duration"]:
        raise ConfigError(
            f"config key 'data.min_duration' ({data['min_duration']}) must be below "
            f"'data.max_duration' ({data['max_duration']})"
        )
    if data["include_retasy"] and "retasy" not in config["sources"]:
        raise ConfigError(
            "config key 'sources.retasy' is missing, but 'data.include_retasy' is true; "
            "add the source or set data.include_retasy: false"
        )
    main = config["sources"]["quran_ayah_corpus"]["splits"]
    for split in ("train", "validation"):
        if split not in main:
            raise ConfigError(
                f"config key 'sources.quran_ayah_corpus.splits.{split}' is missing (required): "
                "the main corpus gives both the train and the validation manifest"
            )
    retasy = config["sources"].get("retasy")
    if retasy is not None and set(retasy["splits"]) != {"train"}:
        raise ConfigError(
            "config key 'sources.retasy.splits' must name only 'train': RetaSy is blended into "
            f"train only, got {sorted(retasy['splits'])}"
        )
    if config["benchmark"].get("build"):
        _check_build(config["benchmark"]["build"])
    unexported = [fmt for fmt in config["longform"]["formats"] or [] if fmt != "nemo"
                  and fmt not in config["export"]["formats"]]
    if unexported:
        raise ConfigError(f"config key 'longform.formats' names {', '.join(unexported)}, which 'export.formats' "
                          f"({', '.join(config['export']['formats'])}) does not export")
    models = ["base", *config["trials"]["names"]]
    unknown = sorted(set(config["export"]["browser_models"] or ()) - set(models))
    if unknown:
        raise ConfigError(f"config key 'export.browser_models' names {', '.join(unknown)}, which is not a model of "
                          f"this run (the base or a trial of trials.names: {', '.join(models)})")


def _check_build(build: Mapping[str, Any]) -> None:
    """benchmark.build: limits in order, and a way to tell each source's verses."""
    pairs = [("min_duration", "max_duration"), ("short_max_words", "medium_max_words")]
    for low, high in pairs:
        if build[low] >= build[high]:
            raise ConfigError(f"config key 'benchmark.build.{low}' ({build[low]}) must be below "
                              f"'benchmark.build.{high}' ({build[high]})")
    names = [source["name"] for source in build["sources"]]
    if len(set(names)) < len(names):
        raise ConfigError(f"config key 'benchmark.build.sources': names must differ, got {names}")
    for number, source in enumerate(build["sources"]):
        where = f"benchmark.build.sources.{number}"
        if source["multi"]["min_verses"] > source["multi"]["max_verses"]:
            raise ConfigError(f"config key '{where}.multi.min_verses' must be at most '{where}.multi.max_verses'")
        if source["multi"]["count"] and not source["speaker_column"]:
            raise ConfigError(f"config key '{where}.multi.count' needs '{where}.speaker_column': "
                              "multi-verse clips join verses of one reciter")
        if source["ayah_column"] and not source["surah_column"]:
            raise ConfigError(f"config key '{where}.ayah_column' needs '{where}.surah_column'")
        if not source["text_column"] and not source["ayah_column"]:
            raise ConfigError(f"config key '{where}' needs text_column, or surah_column and ayah_column, "
                              "to tell each row's verse")
        if source["sessions"] and not source["speaker_column"]:
            raise ConfigError(f"config key '{where}.sessions' needs '{where}.speaker_column': "
                              "a session joins verses of one reciter")
    sessions = build["sessions"]
    for low, high in [("min_verses", "max_verses"), ("min_pause_seconds", "max_pause_seconds"),
                      ("min_between_seconds", "max_between_seconds")]:
        if sessions[low] > sessions[high]:
            raise ConfigError(f"config key 'benchmark.build.sessions.{low}' ({sessions[low]}) must be at most "
                              f"'benchmark.build.sessions.{high}' ({sessions[high]})")


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Validate `config` in place, fill in the schema's defaults, and return it.

    Raises ConfigError with one line that names the first offending key.
    """
    schema = load_schema()
    message = first_error(schema, config)
    if message:
        raise ConfigError(message)
    fill_defaults(schema, config, schema)
    _check_relations(config)
    return config


# A name on the Hugging Face Hub (or NeMo's catalogue): `name` or `owner/name`, no file suffix.
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
_FILE_SUFFIXES = (".nemo", ".parquet", ".json", ".jsonl", ".yaml", ".arrow", ".tar", ".zip")


def is_hub_id(value: str) -> bool:
    """Whether a configured name that does not exist on disk names something on the Hub: it reads
    like `name` or `owner/name` (no leading '/', './', '../' or '~', at most one '/', no file
    suffix). Anything else is a local path. A local folder that does not exist yet reads like a
    Hub id when it is `a/b`: write it as ./a/b."""
    return _HUB_ID.fullmatch(value) is not None and not value.lower().endswith(_FILE_SUFFIXES)


def dataset_path(source: Mapping[str, Any]) -> str | None:
    """The local path a source names, or None for a Hub id."""
    value = source["dataset"]
    declared = source.get("format", "auto")
    if declared == "hub" or (declared == "auto" and not Path(value).exists() and is_hub_id(value)):
        return None
    return value


def local_paths(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every local file or folder the config names, as (key, path): the base model when it is a
    file, every source's dataset, the benchmark corpus when it is not built, the trials' folder,
    the demo base's source and the ASR test set, when they are local."""
    found = []
    base = config["base_model"]
    if Path(base).exists() or not is_hub_id(base):
        found.append(("base_model", base))
    sources = [(f"sources.{name}", source) for name, source in config["sources"].items()]
    build = config["benchmark"]["build"]
    sources += [(f"benchmark.build.sources[{number}]", source) for number, source in
                enumerate(build["sources"] if build else [])]
    if build and build["sessions"]["speech_source"]:
        sources.append(("benchmark.build.sessions.speech_source", build["sessions"]["speech_source"]))
    if config.get("demo_base", {}).get("source"):
        sources.append(("demo_base.source", config["demo_base"]["source"]))
    if config["asr_benchmark"]:
        sources.append(("asr_benchmark", config["asr_benchmark"]))
    found += [(f"{key}.dataset", path) for key, source in sources if (path := dataset_path(source))]
    if not build:
        found.append(("benchmark.corpus", str(Path(config["benchmark"]["corpus"]) / "manifest.json")))
    found.append(("trials.dir", config["trials"]["dir"]))
    return found


def check_local_paths(config: Mapping[str, Any], made_by_rules: tuple[str, ...] = ()) -> None:
    """Raise ConfigError naming the first key whose local file or folder does not exist, so that
    every run, dry runs included, stops before it plans with a missing input. `made_by_rules` are
    paths the workflow makes itself (the demo base model): they need not exist yet."""
    made = {Path(path).resolve() for path in made_by_rules}
    for key, path in local_paths(config):
        if not Path(path).exists() and Path(path).resolve() not in made:
            raise ConfigError(f"config key '{key}': {path} does not exist")


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge like Snakemake merges --configfile files: nested mappings key by key."""
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def load_config(*paths: str | Path) -> dict[str, Any]:
    """Read one or more YAML config files, later ones overriding earlier ones, and validate."""
    config: dict[str, Any] = {}
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            loaded = parse_yaml(handle) or {}
        if not isinstance(loaded, Mapping):
            raise ConfigError(f"{path}: expected a mapping of config keys at the top level")
        _merge(config, loaded)
    return validate_config(config)
