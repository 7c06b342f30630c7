"""What a new user gets wrong, caught before the model loads: one `rtt: error:` line on stderr naming the
source (file, row and field of a data row; YAML file and key, or the command-line override, of a config
value), exit code 2, and nothing written to the output folder."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from trl import GRPOConfig

from rubrics2tokens.cli.main import main
from rubrics2tokens.config import ConfigError, RunConfig, describe, load_run_config
from rubrics2tokens.config_checks import FIELD_RULES, FREE
from rubrics2tokens.data.schema import write_prompt_rows
from rubrics2tokens.data.synthetic import generate_rows
from rubrics2tokens.models.loading import DEFAULT_POLICY, EMBEDDED_MODELS
from rubrics2tokens.relevance.labels import label_with_verifiers, write_labels
from rubrics2tokens.trainer.config import RTTConfig

RUN = """
model: {{name_or_path: embedded:smollm2-135m-instruct}}
data: {{source: file, path: rows.jsonl}}
eval: {{source: none}}
training:
  output_dir: {output}
  max_steps: 2
  per_device_train_batch_size: 4
  num_generations: 4
  learning_rate: {learning_rate}
"""


@pytest.fixture
def run(tmp_path):
    """A valid run config over four valid rows; returns (config path, rows path, output folder)."""
    rows = tmp_path / "rows.jsonl"
    write_prompt_rows(generate_rows(4, seed=0), rows)
    output = tmp_path / "out"
    config = tmp_path / "run.yaml"
    config.write_text(RUN.format(output=output, learning_rate="1.0e-5"))
    return config, rows, output


def rtt_train_error(capsys, *args: str) -> str:
    """Run `rtt train` in this process; the one stderr line of the user error it must end with."""
    with pytest.raises(SystemExit) as exit_info:
        main(["train", *args])
    assert exit_info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rtt: error: "), lines
    return lines[0]


def edit_row(rows: Path, index: int, edit) -> None:
    records = [json.loads(line) for line in rows.read_text().splitlines()]
    edit(records[index])
    rows.write_text("".join(json.dumps(record) + "\n" for record in records))


def test_a_verifier_typo_in_one_row_of_four_stops_the_run_naming_file_row_field(run, capsys):
    config, rows, output = run
    edit_row(rows, 2, lambda r: r["ground_truth"]["instruction_id_list"].__setitem__(0, "testbed:no_comas"))
    line = rtt_train_error(capsys, str(config))
    assert f"{rows}, row 3, field 'ground_truth.instruction_id_list[0]': unknown verifier id 'testbed:no_comas'" \
        in line and "did you mean 'testbed:no_commas'" in line
    assert not output.exists()


def test_verifier_arguments_are_checked_in_every_row(run, capsys):
    config, rows, output = run

    def misspell(record):
        record["ground_truth"]["instruction_id_list"][1] = "testbed:forbidden_word"
        record["ground_truth"]["kwargs"][1] = {"wrd": "very"}

    edit_row(rows, 3, misspell)
    line = rtt_train_error(capsys, str(config))
    assert f"{rows}, row 4, field 'ground_truth.kwargs[1]': testbed:forbidden_word" in line
    assert "has no argument 'wrd' (did you mean 'word'? it takes: word)" in line and not output.exists()


def test_ifeval_arguments_of_a_hir_row_are_checked(run, capsys):
    config, rows, output = run
    hir_row = {"id": "h1", "source": "type1", "prompt": "Write about tea.",
               "rubrics": [{"description": "Answer in at least 3 words."}],
               "ground_truth": {"instruction_id_list": ["length_constraints:number_words"],
                                "kwargs": [{"relation": "more than", "num_words": 3}]}}
    rows.write_text(rows.read_text() + json.dumps(hir_row) + "\n")
    line = rtt_train_error(capsys, str(config))
    assert f"{rows}, row 5, field 'ground_truth.kwargs[0]'" in line and "more than" in line


def test_a_data_file_that_is_not_utf8_names_file_and_row(run, capsys):
    config, rows, output = run
    lines = rows.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"prompt": "', b'"prompt": "caf\xe9 ')  # latin-1, not UTF-8
    rows.write_bytes(b"".join(lines))
    line = rtt_train_error(capsys, str(config))
    assert f"{rows}, row 2, field '<row>': not UTF-8 text (byte 0xe9" in line and not output.exists()


def test_a_config_file_that_is_not_utf8_is_one_line(run, capsys):
    config, rows, output = run
    config.write_bytes(config.read_bytes() + b"# caf\xe9\n")
    assert f"rtt: error: {config}: not UTF-8 text (byte 0xe9" in rtt_train_error(capsys, str(config))


@pytest.mark.parametrize("overrides, source, message", [
    (["training.learning_rate=-1e-5"], "command-line override 'training.learning_rate=-1e-5'",
     "training.learning_rate must be > 0, got -1e-05"),
    (["model.dtype=float33"], "command-line override 'model.dtype=float33'",
     "model.dtype must be one of float32, bfloat16, float16, got 'float33' (did you mean 'float32'?)"),
    (["training.bogus_key=1"], "command-line override 'training.bogus_key=1'", "unknown key(s) 'bogus_key'"),
    (["data.path=missing.jsonl"], "command-line override 'data.path=missing.jsonl'",
     "data.path 'missing.jsonl' resolves to {tmp}/missing.jsonl, which is not a file"),
    (["training.per_device_train_batch_size=3"],
     "{config} with command-line override 'training.per_device_train_batch_size=3'",
     "generation_batch_size (3) must be divisible by num_generations (4)"),
    (["training.num_generations=1"], "command-line override 'training.num_generations=1'",
     "training.num_generations must be >= 2, got 1"),
    (["scoring.mode=judge"], "command-line override 'scoring.mode=judge'",
     "scoring.judge.model is needed by scoring.mode 'judge'"),
    (["eval.source=file"], "command-line override 'eval.source=file'", "eval.path is required"),
    (["training.max_steps"], "override 'training.max_steps' must look like key=value", ""),
])
def test_a_bad_override_is_blamed_on_the_override(run, capsys, overrides, source, message):
    config, rows, output = run
    line = rtt_train_error(capsys, str(config), *overrides)
    tmp = config.parent
    assert f"rtt: error: {source.format(config=config)}" in line and message.format(tmp=tmp) in line
    assert not output.exists()


@pytest.mark.parametrize("edit, message", [
    (lambda text: text.replace("learning_rate: 1.0e-5", "learning_rate: -1.0e-5"),
     "training.learning_rate must be > 0, got -1e-05"),
    (lambda text: text + "  bogus_key: 1\n", "unknown key(s) 'bogus_key' in 'training'"),
    (lambda text: text.replace("path: rows.jsonl", "path: gone.jsonl"),
     "data.path 'gone.jsonl' resolves to {tmp}/gone.jsonl, which is not a file"),
    (lambda text: text.replace("  max_steps: 2", "  max_steps: 2\n   bad indent: [")[:-1], "invalid YAML"),
])
def test_a_bad_value_in_the_file_is_blamed_on_the_file(run, capsys, edit, message):
    config, rows, output = run
    config.write_text(edit(config.read_text()))
    line = rtt_train_error(capsys, str(config))
    assert line.startswith(f"rtt: error: {config}: ") and message.format(tmp=config.parent) in line
    assert not output.exists()


def test_checkpoints_in_the_output_folder_need_resume(run, capsys):
    config, rows, output = run
    (output / "checkpoint-2").mkdir(parents=True)
    (output / "checkpoint-2" / "trainer_state.json").write_text("{}")
    line = rtt_train_error(capsys, str(config))
    assert "already holds checkpoints (last: checkpoint-2); pass --resume" in line


def test_every_config_field_has_a_rule_and_refuses_its_out_of_range_value(run):
    config, rows, output = run
    own_sections = [key for key, _, _ in describe(RunConfig) if not key.startswith("training")]
    grpo_fields = {f.name for f in dataclasses.fields(GRPOConfig)}
    rtt_fields = [f"training.{f.name}" for f in dataclasses.fields(RTTConfig) if f.name not in grpo_fields]
    unruled = [key for key in own_sections + rtt_fields if key not in FIELD_RULES]
    assert unruled == [], "give every field a rule in config_checks.FIELD_RULES (FREE when any value will do)"
    assert all(key.split(".", 1)[1] in grpo_fields for key in FIELD_RULES
               if key.startswith("training.") and key not in rtt_fields), "TRL fields are named as TRL names them"
    load_run_config(config)  # the base config is valid
    walked = 0
    for key, rule in FIELD_RULES.items():
        if rule is FREE:
            continue
        override = f"{key}={json.dumps(rule.bad)}"
        with pytest.raises(ConfigError) as refused:
            load_run_config(config, [override])
        assert str(refused.value).startswith(f"command-line override {override!r}: {key} must be "), override
        walked += 1
    assert walked >= 60


def test_the_real_command_prints_one_line_and_no_traceback(run):
    config, rows, output = run
    edit_row(rows, 0, lambda r: r["ground_truth"]["instruction_id_list"].__setitem__(0, "testbed:no_comas"))
    result = subprocess.run([sys.executable, "-m", "rubrics2tokens.cli.main", "train", str(config)],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"rtt: error: {rows}, row 1, field")
    assert not output.exists()


@pytest.mark.parametrize("override, reason", [
    ("training.off_policy_mask_threshold=0.5", "drops single tokens instead"),
    ("training.loss_type=vespo", "one sequence gets several weights"),
    ("training.max_tool_calling_iterations=3", "tool results into the completion ids"),
])
def test_trl_options_that_change_meaning_with_token_advantages_are_refused(run, override, reason):
    config, rows, output = run
    with pytest.raises(ConfigError, match=reason) as refused:
        load_run_config(config, [override])
    assert f"with command-line override {override!r}: training: " in str(refused.value)
    load_run_config(config, [override, "training.relevance_source=none"])  # plain GRPO keeps TRL's meaning


def test_a_hub_dataset_that_cannot_be_loaded_is_one_line(run, capsys, monkeypatch):
    import datasets

    config, rows, output = run
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    line = rtt_train_error(capsys, str(config), "data.source=hub", "data.path=sastpg/HIR-16K")
    assert line.startswith("rtt: error: data.path 'sastpg/HIR-16K' (data.source 'hub'): the dataset could not be "
                           "loaded: ") and "use data.source 'file'" in line
    assert not output.exists()


BAD_MODELS = {  # a model name a new user gets wrong -> what the one line must say
    "embedded:smollm2-360m-instruct": ["unknown embedded model 'embedded:smollm2-360m-instruct' (did you mean "
                                       "'embedded:smollm2-135m-instruct'?)", *EMBEDDED_MODELS],
    "nobody-rtt-test/no-such-model": ["model 'nobody-rtt-test/no-such-model' is not a local path",
                                      "not in the Hub cache", "while HF_HUB_OFFLINE is set",
                                      "unset HF_HUB_OFFLINE to download it", DEFAULT_POLICY],
    "runs/no/such/model": ["model 'runs/no/such/model' is not a local path, and not a Hugging Face Hub id",
                           DEFAULT_POLICY],
}


@pytest.fixture
def label_file(tmp_path):
    """Verifier labels of one short response to each of four testbed prompts (input of `rtt relevance train`)."""
    rows = generate_rows(4, seed=0)
    return write_labels(label_with_verifiers(rows, {row.id: ["Hello there."] for row in rows}),
                        tmp_path / "labels.jsonl")


def model_commands(run, label_file, model: str) -> dict[str, list[str]]:
    """The command line of every command that takes a model name, given ``model``; each writes to run's output
    folder, which a refused model name must leave unwritten."""
    config, rows, output = run
    relevance_config = config.parent / "relevance.yaml"
    relevance_config.write_text(f"train_file: {label_file}\noutput_dir: {output}\n")
    return {"train": ["train", str(config), f"model.name_or_path={model}"],
            "relevance train": ["relevance", "train", str(relevance_config), f"backbone={model}"],
            "relevance label": ["relevance", "label", "--policy", model, "--num-prompts", "2",
                                "--out", str(output / "labels.jsonl")],
            "eval run": ["eval", "run", "--benchmark", "ifeval", "--model", model, "--out", str(output)]}


@pytest.mark.parametrize("model", BAD_MODELS)
@pytest.mark.parametrize("command", ["train", "relevance train", "relevance label", "eval run"])
def test_a_model_name_that_names_no_model_is_one_line_wherever_a_model_is_named(run, label_file, capsys, model,
                                                                                command):
    output = run[2]
    with pytest.raises(SystemExit) as exit_info:
        main(model_commands(run, label_file, model)[command])
    assert exit_info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rtt: error: "), lines
    assert all(part in lines[0] for part in BAD_MODELS[model]), lines[0]
    assert not output.exists()  # `eval run` above all: settings kept there would refuse the corrected rerun


@pytest.mark.parametrize("model", ["embedded:smollm2-360m-instruct", "nobody-rtt-test/no-such-model"])
def test_the_real_command_names_a_missing_model_in_one_line_without_traceback(run, model):
    config, rows, output = run
    result = subprocess.run([sys.executable, "-m", "rubrics2tokens.cli.main", "train", str(config),
                             f"model.name_or_path={model}"],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rtt: error: "), lines
    assert all(part in lines[0] for part in BAD_MODELS[model])


def test_an_abbreviated_option_is_refused_not_completed(run, capsys):
    config, rows, output = run
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(config), "--resum"])  # argparse's default would take it as --resume
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --resum" in capsys.readouterr().err
    assert not output.exists()
