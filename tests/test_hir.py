"""HIR-16K loading: the sample file, source -> verifier mapping, no rubric cap, DataErrors, real verifiers."""

import json

import pytest

from rubrics2tokens.data.hir import load_hir_hub, muldimif_verifier_id, parse_hir_row
from rubrics2tokens.data.row_formats import load_prompt_rows
from rubrics2tokens.data.schema import DataError, write_prompt_rows
from rubrics2tokens.scoring.router import RoutingScorer
from rubrics2tokens.verifiers.registry import DATASET_RULE_ID
from tests_paths import REPO

SAMPLE = REPO / "data" / "samples" / "hir_sample.jsonl"


@pytest.fixture(scope="module")
def sample_rows():
    return {row.id: row for row in load_prompt_rows(SAMPLE)}


def test_sample_covers_every_source(sample_rows):
    assert len(sample_rows) == 10
    assert {row.source for row in sample_rows.values()} == {"hir:type1", "hir:type2", "hir:type3", "hir:type4"}


def test_sources_map_to_verifier_ids(sample_rows):
    ifeval = sample_rows["hir-sample-01"].rubrics[1]
    assert (ifeval.verifier, ifeval.kwargs) == ("ifeval:length_constraints:number_words",
                                                {"num_words": 60, "relation": "less than"})
    assert sample_rows["hir-sample-04"].rubrics[0].verifier == "ifbench:count:word_count_range"
    muldimif = sample_rows["hir-sample-06"].rubrics[2]
    assert muldimif.verifier == "muldimif:content_keywords"
    assert muldimif.kwargs == {"description": "The response must include the keyword 'sunlight'"}
    rule, llm = sample_rows["hir-sample-08"].rubrics[0], sample_rows["hir-sample-08"].rubrics[2]
    assert rule.verifier == DATASET_RULE_ID and rule.kwargs["function"] == "check_following"
    assert "def check_following(instruction, response)" in rule.kwargs["code"]
    assert rule.kwargs["instruction"] == sample_rows["hir-sample-08"].prompt
    assert llm.verifier is None and llm.kwargs == {}
    assert all(r.verifier is None for r in sample_rows["hir-sample-10"].rubrics)


def test_raw_hub_form_criteria_and_json_ground_truth(sample_rows):
    row = sample_rows["hir-sample-03"]  # written with 'criteria' strings and ground_truth as JSON text
    assert [r.verifier for r in row.rubrics] == ["ifeval:detectable_format:title", "ifeval:startend:quotation"]


def test_muldimif_ids_follow_the_official_checker_table():
    assert muldimif_verifier_id("Content", "Keywords: Must include") == "muldimif:content_keywords"
    assert muldimif_verifier_id("Table", "Row limit") == "muldimif:format_table"
    assert muldimif_verifier_id("Markdown", "Heading levels") == "muldimif:format_markdown"
    assert muldimif_verifier_id("Language", "Chinese") is None, "Chinese-script rules go to the judge"
    assert muldimif_verifier_id("Content", "Rhyme scheme") is None, "a kind no code checker covers"


def test_written_rows_reload_unchanged(sample_rows, tmp_path):
    path = write_prompt_rows(sample_rows.values(), tmp_path / "out.jsonl")
    assert {row.id: row for row in load_prompt_rows(path)} == sample_rows


def test_the_hub_loader_reads_a_dataset_folder_as_the_file_loader_reads_the_file(sample_rows, tmp_path):
    """`datasets` gives every record every column of the file (the sample mixes 'rubrics' and 'criteria'
    records): a column a record lacks arrives as None and must read as absent."""
    (tmp_path / "train.jsonl").write_text(SAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    assert {row.id: row for row in load_hir_hub(str(tmp_path))} == sample_rows


def test_thirty_rubrics_are_all_kept():
    record = {"id": 7, "source": "type4", "prompt": "Write a list.",
              "rubrics": [{"description": f"Item {k} is present."} for k in range(30)],
              "ground_truth": {"checker": ["[llm] item"] * 30, "functions": [""] * 30}}
    assert len(parse_hir_row(record).rubrics) == 30


def _type1_record():
    return {"id": "x", "source": "type1", "prompt": "Answer without commas.",
            "rubrics": [{"description": "No commas."}],
            "ground_truth": {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}}


@pytest.mark.parametrize("change, field", [
    (lambda r: r["ground_truth"].update(kwargs=[{}, {}]), "ground_truth.kwargs"),
    (lambda r: r["ground_truth"].update(instruction_id_list=[3]), "ground_truth.instruction_id_list[0]"),
    (lambda r: r.update(ground_truth="{not json"), "ground_truth"),
    (lambda r: r.update(source="type3", ground_truth={"constraints": [["Length", "Words"]]}),
     "ground_truth.constraints[0]"),
    (lambda r: r.update(source="type4", ground_truth={"checker": ["[rule] x"]}), "ground_truth.functions"),
    (lambda r: r.update(source="type4", ground_truth={"checker": [None], "functions": [""]}),
     "ground_truth.checker[0]"),
    (lambda r: r.update(rubrics=[]), "rubrics"),
    (lambda r: r.update(rubrics=[{"description": ""}]), "rubrics[0].description"),
])
def test_malformed_rows_name_file_row_and_field(tmp_path, change, field):
    good, bad = _type1_record(), _type1_record()
    change(bad)
    path = tmp_path / "hir.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(DataError) as caught:
        load_prompt_rows(path)
    assert (caught.value.path, caught.value.row, caught.value.field_name) == (str(path), 2, field)
    assert str(path) in str(caught.value) and "row 2" in str(caught.value)


RESPONSES = {
    "hir-sample-01": ("the weekly sync moves to thursday because the design review now takes the wednesday slot. "
                      "same time and same room. see you there.", [True, True, True]),
    "hir-sample-02": ("* Start from the timeline and list every cost by month.\n"
                      "* Keep a reserve of ten percent in the budget.\n"
                      "* Review the numbers with the team lead. Any other questions?", [True, True, True]),
    "hir-sample-04": ("The city wakes slowly, and early light spills over quiet rooftops.", [False, True]),
}


def test_ifeval_and_ifbench_rubrics_score_with_the_real_verifiers(sample_rows):
    rows = [sample_rows[row_id] for row_id in RESPONSES]
    scored = RoutingScorer(mode="verifiers").score([row.prompt for row in rows],
                                                   [RESPONSES[row.id][0] for row in rows],
                                                   [row.rubrics for row in rows])
    for i, row in enumerate(rows):
        assert scored.verdicts[i, :len(row.rubrics)].tolist() == [float(v) for v in RESPONSES[row.id][1]], row.id


def test_the_sample_python_rules_give_the_right_verdicts(sample_rows):
    from rubrics2tokens.verifiers import sandbox

    rows = [sample_rows["hir-sample-08"], sample_rows["hir-sample-09"]]
    responses = ["Meet the bottle that goes everywhere with you.\n\nFill it, sip it, love it: no plastic waste.",
                 "1. Walk for five minutes.\n2. Jog for one minute, then walk for two.\n3. Repeat it three times."]
    rule_rubrics = [[r for r in row.rubrics if r.verifier == DATASET_RULE_ID] for row in rows]
    sandbox.allow_dataset_code(True, sandbox.SandboxLimits(timeout_s=2.0, workers=1))
    try:
        scored = RoutingScorer(mode="verifiers").score([row.prompt for row in rows], responses, rule_rubrics)
    finally:
        sandbox.allow_dataset_code(False)
    assert scored.verdicts[0].tolist() == [1.0, 0.0]  # two paragraphs; but it mentions plastic
    assert scored.verdicts[1, :1].tolist() == [1.0]
