"""`rtt eval compare` on folders written by `rtt eval score` from the official IFEval reference responses."""

import json

import pytest

from rubrics2tokens.cli.main import main
from rubrics2tokens.evaluation.compare import LENGTH_FREE, METRICS, compare, read_prompt_scores
from rubrics2tokens.evaluation.length import is_length_free
from tests_paths import IFEVAL_DATA, IFEVAL_STRICT, read_rows


def _score(tmp_path, name, responses):
    """`rtt eval score` on (key, response) pairs; returns the output folder."""
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(json.dumps({"key": key, "response": text}) + "\n" for key, text in responses))
    main(["eval", "score", "--benchmark", "ifeval", "--responses", str(path), "--out", str(tmp_path / name),
          "--data", str(IFEVAL_DATA)])
    return tmp_path / name


@pytest.fixture(scope="module")
def reference():
    """(key, official response) of the first 60 IFEval prompts."""
    keys = {row["prompt"]: row["key"] for row in read_rows(IFEVAL_DATA)}
    rows = read_rows(IFEVAL_STRICT)
    return [(keys[row["prompt"]], row["response"]) for row in rows[:60]]


def test_accuracies_are_the_summaries_and_a_policy_that_answers_nothing_is_worse_beyond_the_interval(
        tmp_path, reference, capsys):
    good = _score(tmp_path, "good", reference)
    # the second folder answers 40 of the same prompts with an empty response (each of its instructions fails
    # or passes as the empty text does) and 20 as the reference did, plus a second response to one prompt
    mixed = [(key, "" if i < 40 else text) for i, (key, text) in enumerate(reference)] + [(reference[50][0], "")]
    worse = _score(tmp_path, "worse", mixed)
    capsys.readouterr()

    comparison = compare(read_prompt_scores(good), read_prompt_scores(worse))
    assert comparison.prompts == 60
    for name, folder, side in (("good", good, comparison.base), ("worse", worse, comparison.other)):
        summary = json.loads((folder / "summary.json").read_text())
        for metric in METRICS:
            assert side[metric] == pytest.approx(summary[metric]), (name, metric)
    for metric in METRICS:
        low, high = comparison.interval[metric]
        assert low <= comparison.difference(metric) <= high
        assert high < 0, metric  # 40 emptied answers of 60: a real drop, not noise

    main(["eval", "compare", str(good), str(worse), str(good), "--json", str(tmp_path / "cmp.json")])
    printed = capsys.readouterr().out
    assert "prompt_level_strict" in printed and "worse (60 prompts)" in printed
    written = json.loads((tmp_path / "cmp.json").read_text())
    assert written["base"] == "good"
    assert written["compared"]["good"]["minus_base"]["prompt_level_strict"] == {"mean": 0.0, "low": 0.0, "high": 0.0}
    assert written["compared"]["worse"]["minus_base"]["instruction_level_loose"]["high"] < 0


def test_only_shared_prompts_are_compared_and_none_shared_is_one_error_line(tmp_path, reference, capsys):
    first = _score(tmp_path, "first", reference[:30])
    overlapping = _score(tmp_path, "overlapping", reference[20:50])
    disjoint = _score(tmp_path, "disjoint", reference[40:])
    assert compare(read_prompt_scores(first), read_prompt_scores(overlapping)).prompts == 10
    capsys.readouterr()
    with pytest.raises(SystemExit) as error:
        main(["eval", "compare", str(first), str(disjoint)])
    assert str(error.value).startswith("rtt: error: ") and "share no prompt" in str(error.value)
    with pytest.raises(SystemExit):
        main(["eval", "compare", str(first), str(tmp_path / "missing")])
    assert "verdicts.jsonl: no such file" in capsys.readouterr().err


def test_the_length_free_accuracy_and_the_per_instruction_rates_count_the_verdicts(tmp_path, reference, capsys):
    good = _score(tmp_path, "good", reference)
    emptied = _score(tmp_path, "emptied", [(key, "") for key, _ in reference])
    rows = [json.loads(line) for line in (good / "verdicts.jsonl").read_text().splitlines()]
    free = [(verdict, name) for row in rows for verdict, name in zip(row["strict"], row["instruction_id_list"])
            if is_length_free(name)]
    assert 0 < len(free) < sum(len(row["strict"]) for row in rows), "the 60 prompts have both kinds"
    scores = read_prompt_scores(good)
    comparison = compare(scores, read_prompt_scores(emptied))
    assert comparison.base[LENGTH_FREE] == pytest.approx(sum(verdict for verdict, _ in free) / len(free))
    assert comparison.interval[LENGTH_FREE][1] < 0, "an empty answer has no title, no P.S., no quotes"
    titles = [verdict for verdict, name in free if name == "detectable_format:title"]
    assert scores.instructions["detectable_format:title"] == (sum(titles), len(titles))
    assert sum(total for _, total in scores.instructions.values()) == sum(len(row["strict"]) for row in rows)

    capsys.readouterr()
    main(["eval", "compare", str(good), str(emptied), "--per-instruction", "--json", str(tmp_path / "cmp.json")])
    printed = capsys.readouterr().out
    assert LENGTH_FREE in printed and "detectable_format:title *" in printed
    assert "length_constraints:number_words *" not in printed
    written = json.loads((tmp_path / "cmp.json").read_text())
    assert written["instructions"]["good"]["detectable_format:title"] == {"passed": sum(titles),
                                                                          "verdicts": len(titles)}


def test_a_benchmark_without_length_free_instructions_compares_the_four_accuracies(tmp_path, reference):
    counted = [(key, text) for key, text in reference
               if not any(is_length_free(name) for name in _instructions(key))]
    folder = _score(tmp_path, "counted", counted)
    comparison = compare(read_prompt_scores(folder), read_prompt_scores(folder))
    assert set(comparison.interval) == set(METRICS)


def _instructions(key):
    return next(row["instruction_id_list"] for row in read_rows(IFEVAL_DATA) if str(row["key"]) == str(key))


def test_every_length_free_instruction_is_an_ifeval_instruction():
    from rubrics2tokens.evaluation.length import LENGTH_FREE_INSTRUCTIONS

    ifeval = {name for row in read_rows(IFEVAL_DATA) for name in row["instruction_id_list"]}
    assert LENGTH_FREE_INSTRUCTIONS < ifeval and len(LENGTH_FREE_INSTRUCTIONS) == 9


def test_folders_with_the_same_name_are_told_apart_and_a_missing_metric_prints_a_dash(tmp_path, reference, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    good = _score(tmp_path / "a", "eval", reference)
    emptied = _score(tmp_path / "b", "eval", [(key, "") for key, _ in reference])
    counted = _score(tmp_path, "counted", [(key, text) for key, text in reference
                                           if not any(is_length_free(name) for name in _instructions(key))])
    capsys.readouterr()
    main(["eval", "compare", str(good), str(emptied), str(counted)])
    lines = capsys.readouterr().out.splitlines()
    assert str(emptied) in lines[1], "two folders called 'eval': named by their paths"
    strict = next(line for line in lines if line.startswith("prompt_level_strict"))
    assert strict.split(" | ")[2].split()[1].startswith("(-"), "the emptied answers are worse, not the base itself"
    free = next(line for line in lines if line.startswith(LENGTH_FREE))
    assert free.split(" | ")[-1] == "-", "the counted-only folder shares no length-free instruction"
