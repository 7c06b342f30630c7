"""Run configs and prompt-row files: what users write by hand, and the errors they get."""

from __future__ import annotations

import json

import pytest

from rubrics2tokens.config import ConfigError, RunConfig, describe, load_run_config
from rubrics2tokens.data.dataset import to_trl_dataset
from rubrics2tokens.data.row_formats import load_prompt_rows
from rubrics2tokens.data.schema import DataError, rubrics_from_json
from rubrics2tokens.data.synthetic import generate_rows, write_testbed
from tests_paths import REPO


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_demo_config_loads_with_the_documented_settings():
    config = load_run_config(REPO / "configs" / "demo.yaml")
    assert isinstance(config, RunConfig)
    assert config.training.relevance_source == "oracle"
    assert config.training.token_partition == "signed"  # the collapse guard of docs/token-credit.md
    assert config.training.overlong_penalty_tokens == 16
    assert config.training.reward_aggregation == "csr"
    assert config.data.source == "testbed"


def test_overrides_are_parsed_as_yaml_and_coerced(tmp_path):
    path = write(tmp_path / "run.yaml", "training:\n  learning_rate: 1e-6\n")
    config = load_run_config(path, ["training.max_steps=3", "training.token_partition=signed",
                                    "data.testbed.families=[no_commas, min_words]"])
    assert config.training.learning_rate == 1e-6  # YAML 1.1 reads "1e-6" as a string
    assert config.training.max_steps == 3
    assert config.training.token_partition == "signed"
    assert config.data.testbed.families == ["no_commas", "min_words"]


@pytest.mark.parametrize("text, overrides, message", [
    ("training:\n  learnin_rate: 0.1\n", [], "did you mean 'learning_rate'"),
    ("modle: {}\n", [], "did you mean 'model'"),
    ("training:\n  max_steps: ten\n", [], "training.max_steps: expected an integer"),
    ("training:\n  token_partition: per_token\n", [], "token_partition"),
    ("data:\n  source: file\n", [], "data.path is required"),
    ("data:\n  source: web\n", [], "data.source must be"),
    ("training: [1, 2]\n", [], "expected a mapping"),
    ("training:\n  max_steps: 1\n", ["training.max_steps"], "must look like key=value"),
    ("training: {max_steps: 1\n", [], "invalid YAML"),
])
def test_bad_configs_name_the_file_and_the_key(tmp_path, text, overrides, message):
    path = write(tmp_path / "bad.yaml", text)
    with pytest.raises(ConfigError, match=message) as error:
        load_run_config(path, overrides)
    if not overrides:  # override errors come from the command line, not the file
        assert "bad.yaml" in str(error.value)


def test_every_config_key_is_documented_in_the_readme():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for key, _, help_text in describe(RunConfig):
        assert help_text, f"{key} has no help text"
        assert f"`{key}`" in readme, f"README does not document {key}"
    for key in ("reward_aggregation", "token_partition", "token_advantage_method", "token_advantage_coef",
                "token_softmax_tau", "relevance_source", "relevance_model", "relevance_batch_size", "rollout_backend",
                "rollout_batch_size", "zero_special_tokens"):
        assert f"`training.{key}`" in readme, key


def test_testbed_rows_round_trip_into_the_trl_dataset(tmp_path):
    path = write_testbed(tmp_path / "testbed.jsonl", 6, seed=4)
    rows = load_prompt_rows(path)
    assert rows == generate_rows(6, seed=4)
    dataset = to_trl_dataset(rows)
    assert dataset.column_names == ["id", "prompt", "rubrics_json"]
    assert rubrics_from_json(dataset[0]["rubrics_json"]) == rows[0].rubrics
    assert dataset[0]["prompt"] == rows[0].messages


def test_testbed_quality_rubrics_reach_the_training_and_heldout_rows(tmp_path):
    from rubrics2tokens.builder import build_heldout_rows, build_rows

    path = write(tmp_path / "run.yaml", "data:\n  testbed:\n    num_prompts: 6\neval:\n  num_prompts: 4\n")
    assert load_run_config(path).data.testbed.quality_rubrics == []
    config = load_run_config(path, ["data.testbed.quality_rubrics=[distinct_words, end_with_sentence]"])
    assert config.data.testbed.quality_rubrics == ["distinct_words", "end_with_sentence"]
    rows = build_rows(config)
    for row in rows + build_heldout_rows(config, rows):
        assert [r.verifier for r in row.rubrics[-2:]] == ["testbed:distinct_words", "testbed:end_with_sentence"]
    assert [row.rubrics[:-2] for row in rows] == [row.rubrics for row in build_rows(load_run_config(path))]


@pytest.mark.parametrize("value", ["[distinct_word]", "[no_commas]"])
def test_testbed_quality_rubrics_unknown_name_is_one_error_naming_the_key(tmp_path, value):
    path = write(tmp_path / "run.yaml", "data:\n  testbed:\n    num_prompts: 6\n")
    override = f"data.testbed.quality_rubrics={value}"
    with pytest.raises(ConfigError) as error:
        load_run_config(path, [override])
    message = str(error.value)
    assert message.startswith(f"command-line override {override!r}: data.testbed.quality_rubrics must be a list of "
                              "quality families (no_repeated_sentences, distinct_words, end_with_sentence, "
                              "length_floor)")
    assert "\n" not in message


GOOD_ROW = {"id": "a", "prompt": "Write.", "rubrics": [{"description": "No commas.", "weight": 2}],
            "ground_truth": {"instruction_id_list": ["testbed:no_commas"], "kwargs": [{}]}}


@pytest.mark.parametrize("patch, field, problem", [
    ({"rubrics": []}, "rubrics", "non-empty list"),
    ({"rubrics": [{"description": ""}]}, "rubrics[0].description", "non-empty string"),
    ({"rubrics": [{"description": "x", "weight": -1}]}, "rubrics[0].weight", ">= 0"),
    ({"rubrics": [{"description": "x", "weight": "heavy"}]}, "rubrics[0].weight", "finite number"),
    ({"prompt": None, "messages": None}, "messages", "needs 'messages'"),
    ({"messages": [{"role": "user"}]}, "messages[0]", "string 'role' and 'content'"),
    ({"ground_truth": {"instruction_id_list": [], "kwargs": []}}, "ground_truth.instruction_id_list", "aligned"),
    ({"ground_truth": {"instruction_id_list": ["testbed:no_commas"], "kwargs": [3]}}, "ground_truth.kwargs[0]",
     "must be an object"),
])
def test_malformed_rows_name_file_row_and_field(tmp_path, patch, field, problem):
    bad = {**GOOD_ROW, **patch}
    path = write(tmp_path / "rows.jsonl", json.dumps(GOOD_ROW) + "\n\n" + json.dumps(bad) + "\n")
    with pytest.raises(DataError) as error:
        load_prompt_rows(path)
    assert error.value.row == 3 and error.value.field_name == field
    assert problem in str(error.value) and "rows.jsonl" in str(error.value)


def test_invalid_json_and_missing_files_are_clear(tmp_path):
    path = write(tmp_path / "rows.jsonl", json.dumps(GOOD_ROW) + "\n{not json\n")
    with pytest.raises(DataError, match=r"rows.jsonl, row 2, field '<row>': invalid JSON"):
        load_prompt_rows(path)
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        load_prompt_rows(tmp_path / "missing.jsonl")


def test_a_row_keeps_weights_and_judge_rubrics(tmp_path):
    row = {**GOOD_ROW, "rubrics": [{"description": "No commas.", "weight": 2}, {"description": "Is polite."}],
           "ground_truth": {"instruction_id_list": ["testbed:no_commas", None], "kwargs": [{}, None]}}
    (loaded,) = load_prompt_rows(write(tmp_path / "rows.jsonl", json.dumps(row) + "\n"))
    assert [r.weight for r in loaded.rubrics] == [2.0, 1.0]
    assert [r.family for r in loaded.rubrics] == ["testbed:no_commas", "judge"]
    assert loaded.messages == [{"role": "user", "content": "Write."}]
