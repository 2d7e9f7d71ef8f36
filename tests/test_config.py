"""The config schema: defaults, and one clear message per kind of mistake, also from `snakemake -n`."""

from __future__ import annotations

import copy
import shutil

import pytest
import yaml

from conftest import REPO, snakemake
from quranft.config import ConfigError, load_config, validate_config


def real_config() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text(encoding="utf-8"))


def test_real_and_demo_configs_validate_and_take_schema_defaults():
    real = load_config(REPO / "config" / "config.yaml")
    # no ceilings: the data stage prepares what the trials ask for
    assert [real["data"][f"max_{kind}_samples"] for kind in ("train", "val", "retasy")] == [None, None, None]
    assert (real["data"]["min_duration"], real["data"]["max_duration"]) == (0.6, 30.0)
    assert real["sources"]["retasy"]["keep_labels"] == ["correct", None]  # null: the unannotated rows
    assert real["data"]["sample_rate"] == 16000  # not in the file: the schema's default
    assert real["sources"]["quran_ayah_corpus"]["format"] == "auto"
    assert real["benchmark"]["decoders"] == ["ctc", "rnnt"]  # both heads judged where a model has both
    demo = load_config(REPO / "config" / "config.yaml", REPO / "config" / "demo.yaml")
    assert demo["sources"]["quran_ayah_corpus"]["dataset"] == "demo/quran_ayah_corpus"
    assert demo["sources"]["retasy"]["text_column"] == "Aya"  # kept from the real config
    assert demo["benchmark"]["decoders"] == ["ctc"]  # the demo base's RNNT head is untrained


MISTAKES = {
    "unknown key": (
        lambda c: c["data"].update(min_durration=1.0),
        "config key 'data.min_durration' is unknown; expected one of:",
    ),
    "wrong type": (
        lambda c: c["data"].update(max_train_samples="lots"),
        "config key 'data.max_train_samples' must be of type integer or null, got str 'lots'",
    ),
    "min above max": (
        lambda c: c["data"].update(min_duration=31.0),
        "config key 'data.min_duration' (31.0) must be below 'data.max_duration' (30.0)",
    ),
    "missing source": (
        lambda c: c["sources"].pop("quran_ayah_corpus"),
        "config key 'sources.quran_ayah_corpus' is missing (required)",
    ),
    "bad enum": (
        lambda c: c["sources"]["retasy"].update(format="csv"),
        "config key 'sources.retasy.format' must be one of",
    ),
    "decoders without the ctc head": (
        lambda c: c["benchmark"].update(decoders=["rnnt"]),
        "config key 'benchmark.decoders' must include 'ctc', got ['rnnt']",
    ),
    "a long-form file that is not exported": (
        lambda c: c["longform"].update(formats=["nemo", "int4"]),
        "config key 'longform.formats' names int4, which 'export.formats' (fp32, int8) does not export",
    ),
    "browser check for no model": (
        lambda c: c.setdefault("export", {}).update(browser_models=["v2", "v9"]),
        "config key 'export.browser_models' names v9, which is not a model of this run",
    ),
    "retasy blended but absent": (
        lambda c: c["sources"].pop("retasy"),
        "config key 'sources.retasy' is missing, but 'data.include_retasy' is true",
    ),
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_each_mistake_gives_one_message_naming_the_key(mistake):
    edit, message = MISTAKES[mistake]
    config = real_config()
    edit(config)
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_keep_labels_and_drop_labels_exclude_each_other():
    config = real_config()
    config["sources"]["retasy"]["drop_labels"] = ["in_correct"]
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    assert str(error.value).startswith("config key 'sources.retasy'")
    assert "keep_labels and drop_labels exclude each other" in str(error.value)


def test_validation_does_not_change_a_valid_config_except_for_defaults():
    config = real_config()
    before = copy.deepcopy(config)
    validate_config(config)
    assert config["sources"]["quran_ayah_corpus"]["dataset"] == before["sources"]["quran_ayah_corpus"]["dataset"]
    assert all(config["data"][key] == value for key, value in before["data"].items())


@pytest.mark.slow
@pytest.mark.parametrize("mistake", ["unknown key", "min above max", "missing source", "wrong type"])
def test_snakemake_dry_run_stops_with_the_message(tmp_path, mistake):
    edit, message = MISTAKES[mistake]
    config = real_config()
    edit(config)
    config["benchmark"]["corpus"] = str(REPO / "demo" / "benchmark")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    result = snakemake(tmp_path, "-n", "--replace-workflow-config", "--configfile", str(path), check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert message in output
    assert output.count(message) == 1


@pytest.mark.slow
def test_building_over_a_corpus_the_builder_did_not_make_is_refused_before_anything_runs(tmp_path):
    from quranft.data.benchmark_corpus import CorpusError, check_build_target

    corpus = tmp_path / "corpus"
    shutil.copytree(REPO / "demo" / "benchmark", corpus)
    config = real_config()
    assert config["benchmark"]["build"]  # the real config builds its corpus
    config["benchmark"]["corpus"] = str(corpus)
    path = tmp_path / "build-over.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    result = snakemake(tmp_path, "-n", "--replace-workflow-config", "--configfile", str(path), check=False)
    assert result.returncode != 0
    assert f"config key 'benchmark.corpus' ({corpus}) holds a corpus that benchmark.build did not make" in (
        result.stdout + result.stderr)
    assert (corpus / "manifest.json").is_file()
    (corpus / "build_report.json").write_text("{}", encoding="utf-8")
    check_build_target(corpus)  # a corpus the builder made is built again
    with pytest.raises(CorpusError):
        check_build_target(REPO / "demo" / "benchmark")


class UniqueKeys(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping (YAML's loaders keep the last)."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        repeated = sorted({key for key in keys if keys.count(key) > 1})
        if repeated:
            raise yaml.constructor.ConstructorError(None, None, f"keys given twice: {repeated}", node.start_mark)
        return super().construct_mapping(node, deep=deep)


@pytest.mark.parametrize("name", ["config.yaml", "demo.yaml", "demo_built.yaml", "rehearsal.yaml"])
def test_no_config_file_gives_a_key_twice(name):
    """A section given twice silently loses the first (the demo's export.max_seqacc_loss once did)."""
    yaml.load((REPO / "config" / name).read_text(encoding="utf-8"), Loader=UniqueKeys)
