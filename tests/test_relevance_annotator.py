"""The LLM annotator label source: quotes located in responses, unmatched quotes reported, replies resumable."""

from __future__ import annotations

import json

import pytest

from judge_server import fast_config, fault_server  # noqa: F401  (fault_server is a fixture)
from rubrics2tokens.cli.main import main
from rubrics2tokens.data.schema import PromptRow, Rubric
from rubrics2tokens.judge import LLMJudge
from rubrics2tokens.relevance.annotator import (Annotation, label_with_annotator, locate_quote, parse_annotation,
                                                read_replies)
from rubrics2tokens.relevance.labels import load_labels


def test_exact_quotes_are_found_at_every_occurrence():
    response = "the cat sat; the cat left"
    assert locate_quote(response, "the cat") == [(0, 7), (13, 20)]
    assert locate_quote(response, "left") == [(21, 25)]


def test_a_quote_with_other_case_or_spacing_is_found_on_the_original_characters():
    response = "Intro.\n\nThe  Quick\tbrown fox."
    [(start, end)] = locate_quote(response, "the quick brown")
    assert response[start:end] == "The  Quick\tbrown"
    # a quote surrounded by whitespace the model added
    [(start, end)] = locate_quote(response, "  fox. ")
    assert response[start:end] == "fox."


def test_lowercasing_that_lengthens_a_character_keeps_offsets_on_the_original_text():
    response = "İstanbul is big. ISTANBUL is old."  # "İ".lower() is two characters
    spans = locate_quote(response, "is big")
    assert [response[start:end] for start, end in spans] == ["is big"]
    spans = locate_quote(response, "i̇stanbul is")
    assert [response[start:end] for start, end in spans] == ["İstanbul is"]


def test_a_quote_found_nowhere_is_not_guessed():
    assert locate_quote("alpha beta", "alpha gamma") == []
    assert locate_quote("alpha beta", "   ") == []


@pytest.mark.parametrize("reply, expected", [
    ('{"verdict": "YES", "quotes": ["a b"]}', Annotation(True, ["a b"])),
    ('{"verdict": "no", "quotes": []}', Annotation(False, [])),
    ('```json\n{"verdict": "NO", "quotes": ["x"]}\n```', Annotation(False, ["x"])),
    ('{"verdict": "NO", "quotes": [], "stop": true}', Annotation(False, [], stop=True)),
    ('{"verdict": "NO", "quotes": ["x"], "stop": false}', Annotation(False, ["x"])),
    ('{"verdict": "YES", "quotes": [], "stop": true}', None),  # a pass never blames the stop
    ('{"verdict": "NO", "quotes": ["x"], "stop": true}', None),  # the stop is blamed only with nothing quoted
    ('{"verdict": "NO", "quotes": [], "stop": "yes"}', None),
    ('The verdict is YES', None),
    ('{"verdict": "MAYBE", "quotes": []}', None),
    ('{"verdict": "YES"}', None),
    ('{"verdict": "YES", "quotes": "x"}', None),
    ('{"verdict": "YES", "quotes": ["x", ""]}', None),
    ('["YES"]', None),
    (None, None),
])
def test_replies_are_read_strictly(reply, expected):
    assert parse_annotation(reply) == expected


RESPONSE = "Dear team,\nThe Weekly Sync moves to Thursday. Thanks!"


def rows() -> list[PromptRow]:
    rubrics = [Rubric("no commas", "testbed:no_commas"),                    # the verifiers' pair: skipped
               Rubric('Names the day: "thursday" PASS'),                    # case-insensitive match
               Rubric('Is formal; "Dear team," and "Thanks!" are not'),    # two quotes, verdict NO
               Rubric("Is kind PASS"),                                      # no quotes: nothing decides it
               Rubric('Mentions "the weekly sync" [nomatch] PASS'),         # one quote is in no response
               Rubric("Is short [maybe]"),                                  # an unreadable reply
               Rubric('Is polite "Thanks" [500x1] [fence] PASS'),           # a retry, then a fenced reply
               Rubric("Is clear [400]")]                                    # refused: no reply
    return [PromptRow(id="p0", prompt="Tell the team the sync moved.",
                      messages=[{"role": "user", "content": "Tell the team the sync moved."}], rubrics=rubrics)]


def test_annotator_pairs_spans_and_report(fault_server, tmp_path):
    with LLMJudge(fast_config(fault_server.base_url)) as judge:
        pairs, report = label_with_annotator(rows(), {"p0": [RESPONSE]}, judge, tmp_path / "replies.jsonl",
                                             skip_ids={"p0/0/0"})
    by_id = {pair.id: pair for pair in pairs}
    assert sorted(by_id) == ["p0/0/1", "p0/0/2", "p0/0/3", "p0/0/6"]
    assert all(pair.source == "annotator" and pair.family == "judge" and pair.prompt_id == "p0" for pair in pairs)
    assert by_id["p0/0/1"].verdict is True
    assert [RESPONSE[s:e] for s, e in by_id["p0/0/1"].spans] == ["Thursday"]
    assert by_id["p0/0/2"].verdict is False
    assert [RESPONSE[s:e] for s, e in by_id["p0/0/2"].spans] == ["Dear team,", "Thanks!"]
    assert by_id["p0/0/3"].spans == [] and by_id["p0/0/3"].verdict is True
    assert [RESPONSE[s:e] for s, e in by_id["p0/0/6"].spans] == ["Thanks"]
    assert (report.asked, report.labelled, report.no_reply, report.unreadable, report.with_unmatched) == (7, 4, 1, 1, 1)
    assert report.unmatched == [{"id": "p0/0/4", "quote": "words that no response has"}]
    assert report.quotes == 6  # "thursday", "Dear team,", "Thanks!", "the weekly sync", its unmatched twin, "Thanks"
    assert "1 dropped for unmatched quotes" in report.summary()


def test_a_killed_annotation_run_asks_only_what_it_has_no_reply_for(fault_server, tmp_path):
    replies_path = tmp_path / "replies.jsonl"
    with LLMJudge(fast_config(fault_server.base_url)) as judge:
        first, _ = label_with_annotator(rows(), {"p0": [RESPONSE]}, judge, replies_path, {"p0/0/0"}, chunk_size=2)
    stored = read_replies(replies_path)
    assert len(stored) == 6  # the refused question has no reply and is not stored
    asked = fault_server.requests

    # a kill in the middle of writing the last line
    lines = replies_path.read_text().splitlines()
    replies_path.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:15])
    with LLMJudge(fast_config(fault_server.base_url)) as judge:
        again, _ = label_with_annotator(rows(), {"p0": [RESPONSE]}, judge, replies_path, {"p0/0/0"}, chunk_size=2)
    assert again == first
    assert fault_server.requests - asked == 2  # the cut reply and the refused question, nothing else
    assert read_replies(replies_path) == stored


def test_rtt_relevance_label_with_an_annotator(fault_server, tiny_model_dir, tmp_path, capsys):
    prompts = tmp_path / "rows.jsonl"
    prompts.write_text("".join(json.dumps(row.to_json()) + "\n" for row in rows()))
    # the policy's responses as a finished sampling run left them, so the labels do not depend on its samples
    (tmp_path / "labels.responses.jsonl").write_text(json.dumps({"prompt_id": "p0", "responses": [RESPONSE]}) + "\n")
    out = tmp_path / "labels.jsonl"
    command = ["relevance", "label", "--prompts", str(prompts), "--policy", str(tiny_model_dir), "--out", str(out),
               "--annotator-url", fault_server.base_url, "--annotator-model", "test-judge"]
    main(command)
    printed = capsys.readouterr().out
    assert "annotator: 7 pairs asked, 4 labelled" in printed
    assert "wrote 5 labelled pairs (1 from verifiers, 4 from the annotator" in printed
    pairs = load_labels(out)
    assert [(pair.id, pair.source) for pair in pairs] == [("p0/0/0", "verifier"), ("p0/0/1", "annotator"),
                                                          ("p0/0/2", "annotator"), ("p0/0/3", "annotator"),
                                                          ("p0/0/6", "annotator")]
    unmatched = [json.loads(line) for line in (tmp_path / "labels.unmatched.jsonl").read_text().splitlines()]
    assert unmatched == [{"id": "p0/0/4", "quote": "words that no response has"}]

    asked = fault_server.requests
    main(command)  # a second run reuses the stored responses and replies
    assert fault_server.requests - asked == 1  # only the refused question is asked again
    assert load_labels(out) == pairs


def test_the_annotator_needs_a_model_name(tmp_path):
    with pytest.raises(SystemExit, match="--annotator-model"):
        main(["relevance", "label", "--out", str(tmp_path / "x.jsonl"), "--annotator-url", "http://127.0.0.1:9/v1"])
