"""The anonymize package's configuration surface: the domain vocabulary lives in assets/ (not Python) and the
generic word lists ship as package data."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

import pytest
import yaml

from slm_pipeline.config import AnonymizeConfig, PipelineConfig
from slm_pipeline.core.anonymize import Anonymizer, lexicons, pipeline_anonymizer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def anon() -> Anonymizer:
    return Anonymizer(AnonymizeConfig(canaries_file=None))


def test_domain_vocabulary_is_configuration(anon, tmp_path):
    # a customer whose product is the "Harper Cargo" bike: without their vocabulary "Harper" reads as a name
    text = "My Harper Cargo has a flat tyre."
    assert [f.text for f in anon.analyze_texts([text])[0]] == ["Harper"]
    vocab = tmp_path / "vocab.yaml"
    vocab.write_text("common_words: harper\nhead_nouns: cargo\n")
    custom = Anonymizer(AnonymizeConfig(canaries_file=None, vocabulary_file=str(vocab)), anon.analyzer)
    assert custom.anonymize_texts([text]) == [text]
    # each Anonymizer re-activates its own vocabulary, so the two can alternate in one process
    assert [f.text for f in anon.analyze_texts([text])[0]] == ["Harper"]
    assert custom.analyze_texts([text]) == [[]]


def test_version_inputs_follow_the_vocabulary_content_and_the_allowed_company(anon, tmp_path):
    vocab = tmp_path / "vocab.yaml"
    vocab.write_text("common_words: harper\n")
    cfg = AnonymizeConfig(canaries_file=None, vocabulary_file=str(vocab))
    first = Anonymizer(cfg, anon.analyzer, allow=["Syncthing"]).version_inputs()
    assert first["allow"] == ["Syncthing"] and first["vocabulary"] == "common_words: harper\n"
    assert Anonymizer(cfg, anon.analyzer, allow=["LoopBike"]).version_inputs() != first
    vocab.write_text("common_words: harper cargo\n")
    assert Anonymizer(cfg, anon.analyzer, allow=["Syncthing"]).version_inputs() != first


def test_default_vocabulary_holds_the_bike_words_not_the_code():
    doc = yaml.safe_load((ROOT / "assets" / "anonymize_vocabulary.yaml").read_text())
    assert {"dock", "bike", "helmet", "scooter"} <= set(doc["common_words"].split())
    assert {"pass", "station", "dock"} <= set(doc["head_nouns"].split())
    builtin = yaml.safe_load((resources.files("slm_pipeline.core.anonymize") / "data" / "lexicon.yaml").read_text())
    assert not {"dock", "bike", "helmet", "scooter"} & set(builtin["common_words"].split())
    assert AnonymizeConfig().vocabulary_file == "assets/anonymize_vocabulary.yaml"


def test_vocabulary_errors_name_file_and_key(tmp_path):
    bad = tmp_path / "v.yaml"
    bad.write_text("common_word: dock\n")
    with pytest.raises(ValueError, match=r"v\.yaml: unknown key\(s\) \['common_word'\]"):
        lexicons.load_vocabulary(bad)


def test_pipeline_resolves_vocabulary_against_project_root(tmp_path):
    cfg = PipelineConfig(policy_file=str(tmp_path / "none.yaml"),
                         anonymize=AnonymizeConfig(canaries_file=None, vocabulary_file="assets/anonymize_vocabulary.yaml"))
    a = pipeline_anonymizer(cfg)
    assert Path(a.cfg.vocabulary_file).is_absolute()
    assert a.cfg.vocabulary_file == str(cfg.path("assets/anonymize_vocabulary.yaml"))


def test_word_lists_are_package_data():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["slm_pipeline"]
    data = resources.files("slm_pipeline") / "core" / "anonymize" / "data"
    shipped = [p.name for p in Path(str(data)).iterdir()]
    assert shipped and all(any(Path(f"core/anonymize/data/{n}").match(g) for g in globs) for n in shipped)
