"""Label files (schema, validation), verifier labelling and resumable response sampling."""

from __future__ import annotations

import json
import shutil
import re

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from rubrics2tokens.cli.main import main
from rubrics2tokens.data.schema import DataError, PromptRow, Rubric
from rubrics2tokens.relevance.labels import (LabelledPair, label_with_verifiers, load_labels, read_responses,
                                             sample_responses, token_labels, write_labels)
from rubrics2tokens.relevance.model import RelevanceModel
from rubrics2tokens.verifiers.base import Verdict
from rubrics2tokens.verifiers.registry import VERIFIERS, register_verifier, run_verifier

GOOD = {"id": "p1/0/0", "prompt_id": "p1", "rubric": "The response contains no commas.",
        "family": "testbed:no_commas", "response": "Hi, you.", "verdict": False, "spans": [[2, 3]],
        "source": "verifier"}


def write_rows(path, rows):
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def test_a_label_file_round_trips(tmp_path):
    pairs = [LabelledPair(**{**GOOD, "spans": [(2, 3)]}),
             LabelledPair(**{**GOOD, "id": "p1/0/1", "verdict": True, "spans": [], "source": "annotator"}),
             LabelledPair(**{**GOOD, "id": "p1/0/2", "spans": [], "stop": True})]
    assert load_labels(write_labels(pairs, tmp_path / "labels.jsonl")) == pairs


@pytest.mark.parametrize("change, field, problem", [
    ({"rubric": ""}, "rubric", "non-empty string"),
    ({"response": None}, "response", "non-empty string"),
    ({"verdict": "yes"}, "verdict", "true or false"),
    ({"spans": [[2, 9]]}, "spans[0]", "0 <= start < end <= len(response) = 8"),
    ({"spans": [[3, 3]]}, "spans[0]", "start < end"),
    ({"spans": [[1, 2], [2]]}, "spans[1]", "[start, end] pair of integers"),
    ({"spans": [[0.5, 2]]}, "spans[0]", "pair of integers"),
    ({"spans": "2-3"}, "spans", "list of [start, end]"),
    ({"source": "human"}, "source", "verifier, annotator"),
    ({"stop": 1}, "stop", "true or false"),
])
def test_invalid_rows_name_file_row_and_field(tmp_path, change, field, problem):
    path = write_rows(tmp_path / "labels.jsonl", [GOOD, {**GOOD, "id": "p1/0/1", **change}])
    with pytest.raises(DataError, match=re.escape(problem)) as caught:
        load_labels(path)
    assert (caught.value.path, caught.value.row, caught.value.field_name) == (str(path), 2, field)


def test_bad_json_repeated_ids_and_empty_files_are_data_errors(tmp_path):
    with pytest.raises(DataError, match=r"row 2, field '<row>': invalid JSON"):
        load_labels(write_rows(tmp_path / "a.jsonl", [GOOD, "{not json"]))
    with pytest.raises(DataError, match=r"row 2, field 'id': 'p1/0/0' appears twice"):
        load_labels(write_rows(tmp_path / "b.jsonl", [GOOD, GOOD]))
    with pytest.raises(DataError, match="no labelled pairs"):
        load_labels(write_rows(tmp_path / "c.jsonl", []))


def test_verifier_labels_keep_known_verdicts_with_spans():
    if "test:no_spans" not in VERIFIERS:
        register_verifier("test:no_spans", lambda response: Verdict(passed=True, spans=None))
    row = PromptRow(id="p1", prompt="Write.", messages=[{"role": "user", "content": "Write."}], rubrics=[
        Rubric("The response contains no commas.", "testbed:no_commas"),
        Rubric("Is it kind?", None),  # LLM-judged: no verifier labels
        Rubric("At most n words.", "testbed:max_words", {}),  # missing kwarg: the checker fails, verdict unknown
        Rubric("No spans.", "test:no_spans"),  # a verifier that cannot say which characters decide
        Rubric('Ends with "see you soon."', "testbed:end_with_phrase", {"phrase": "see you soon."}),
        Rubric('"river" twice', "testbed:include_keyword", {"keyword": "river", "min_count": 2}),
    ])
    responses = {"p1": ["Hello, river.\nsee you soon.", "   "]}  # a blank response gives no pairs
    pairs = label_with_verifiers([row], responses)
    assert [pair.id for pair in pairs] == ["p1/0/0", "p1/0/4", "p1/0/5"]
    commas, ending, keyword = pairs
    assert (keyword.verdict, keyword.spans, keyword.stop) == (False, [], True), "too few: the stop, not 'river'"
    assert not commas.stop and not ending.stop
    assert (commas.verdict, commas.spans, commas.family) == (False, [(5, 6)], "testbed:no_commas")
    assert ending.verdict and ending.spans == [tuple(s) for s in run_verifier(
        "testbed:end_with_phrase", responses["p1"][0], {"phrase": "see you soon."}).spans]
    assert all(pair.source == "verifier" and pair.prompt_id == "p1" for pair in pairs)


def test_a_token_is_relevant_when_any_of_its_characters_is(tiny_model_dir):
    model = RelevanceModel.from_backbone(str(tiny_model_dir))
    pair = LabelledPair(**{**GOOD, "response": "the river, the sea", "spans": [(4, 6)]})  # "ri" of "river"
    ids, labels = token_labels(model, pair)
    _, offsets = model.tokenize_response(pair.response)
    assert len(labels) == len(ids)
    assert labels.tolist() == [float(start < 6 and 4 < end) for start, end in offsets]
    assert labels.sum() >= 1


@pytest.fixture(scope="module")
def tiny_policy(tiny_model_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)


def rows(n: int) -> list[PromptRow]:
    return [PromptRow(id=f"p{i}", prompt=f"write {i}", messages=[{"role": "user", "content": f"write {i}"}],
                      rubrics=[Rubric("no commas", "testbed:no_commas")]) for i in range(n)]


def test_sampling_resumes_after_a_kill_and_samples_what_an_uninterrupted_run_would(tiny_policy, tmp_path):
    model, tokenizer = tiny_policy
    kwargs = dict(samples_per_prompt=2, max_new_tokens=6, batch_size=2, seed=3)
    complete = sample_responses(model, tokenizer, rows(3), tmp_path / "complete.jsonl", **kwargs)
    assert list(complete) == ["p0", "p1", "p2"] and all(len(r) == 2 for r in complete.values())

    # a run killed while writing its second batch (p2): the first batch's lines, then half a line
    lines = (tmp_path / "complete.jsonl").read_text().splitlines()
    killed = tmp_path / "killed.jsonl"
    killed.write_text(lines[0] + "\n" + lines[1] + "\n" + lines[2][:10])
    assert list(read_responses(killed)) == ["p0", "p1"]
    assert killed.read_text().splitlines() == lines[:2]  # the cut line is gone: appending starts on a clean line
    resumed = sample_responses(model, tokenizer, rows(3), killed, **kwargs)
    assert resumed == complete
    assert killed.read_text().splitlines() == lines  # p0 and p1 were not sampled again


def test_rtt_relevance_label_writes_a_valid_label_file(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "labels.jsonl"
    main(["relevance", "label", "--policy", str(tiny_model_dir), "--num-prompts", "3", "--seed", "1",
          "--max-new-tokens", "8", "--batch-size", "2", "--out", str(out)])
    assert "labelled pairs" in capsys.readouterr().out
    responses = read_responses(tmp_path / "labels.responses.jsonl")
    assert list(responses) == ["testbed-1-000000", "testbed-1-000001", "testbed-1-000002"]
    pairs = load_labels(out)
    assert {pair.prompt_id for pair in pairs} == set(responses)
    assert all(pair.response == responses[pair.prompt_id][0] for pair in pairs)


def test_quality_rubrics_label_the_responses_already_sampled(tiny_model_dir, tmp_path, capsys):
    """Labels for the quality rubrics come from the responses of an earlier label file, not new samples: a
    prompt's drawn constraints and id stay the same, and a relevance model reads (rubric, response) only."""
    first, second = tmp_path / "labels.jsonl", tmp_path / "quality" / "labels.jsonl"
    args = ["relevance", "label", "--policy", str(tiny_model_dir), "--num-prompts", "2", "--seed", "1",
            "--max-new-tokens", "8", "--batch-size", "2"]
    main([*args, "--out", str(first)])
    second.parent.mkdir()
    shutil.copy(tmp_path / "labels.responses.jsonl", second.with_suffix(".responses.jsonl"))
    main([*args, "--quality-rubrics", "distinct_words", "end_with_sentence", "--out", str(second)])
    capsys.readouterr()
    assert read_responses(second.with_suffix(".responses.jsonl")) == read_responses(tmp_path / "labels.responses.jsonl")
    before, after = load_labels(first), load_labels(second)
    assert {pair.family for pair in after} - {pair.family for pair in before} == {"testbed:distinct_words",
                                                                                  "testbed:end_with_sentence"}
    assert [pair for pair in after if pair.family not in {"testbed:distinct_words", "testbed:end_with_sentence"}] \
        == before
    with pytest.raises(SystemExit, match="not to --prompts"):
        main([*args, "--quality-rubrics", "distinct_words", "--prompts", str(first), "--out", str(second)])
