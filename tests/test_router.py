"""Routing rubrics to code verifiers and the LLM judge, against the fault-injecting server."""

from __future__ import annotations

import math
import threading
import time

import pytest

from judge_server import fast_config, fault_server, unused_port  # noqa: F401  (fault_server is a fixture)
from rubrics2tokens.data.schema import Rubric, rubrics_to_json
from rubrics2tokens.judge import LLMJudge
from rubrics2tokens.scoring.router import RoutingScorer, scorer_from_config
from rubrics2tokens.scoring.scorer import RubricReward
from rubrics2tokens.verifiers.base import Verdict
from rubrics2tokens.verifiers.registry import VERIFIERS, UnknownVerifierError

NO_COMMAS = Rubric("The response contains no commas.", verifier="testbed:no_commas", kwargs={})
PROMPT = "Describe the rain."


class RecordingJudge:
    """Passes batches through to a real judge and keeps them."""

    def __init__(self, judge: LLMJudge):
        self.judge = judge
        self.batches: list[list] = []

    def judge_batch(self, questions):
        self.batches.append(list(questions))
        return self.judge.judge_batch(questions)

    def stats(self):
        return self.judge.stats()


@pytest.fixture
def judge(fault_server):
    with LLMJudge(fast_config(fault_server.base_url, timeout_s=0.3)) as llm_judge:
        yield RecordingJudge(llm_judge)


def verdict_rows(scored) -> list[list[float | None]]:
    return [[None if math.isnan(v) else v for v in row] for row in scored.verdicts.tolist()]


def test_hybrid_sends_verifier_rubrics_to_verifiers_and_the_rest_to_the_judge(judge, fault_server):
    rubrics = [[NO_COMMAS, Rubric("PASS it mentions rain"), Rubric("it is formal")],
               [NO_COMMAS, Rubric("PASS it is short")]]
    scored = RoutingScorer(judge, mode="hybrid").score([PROMPT, PROMPT], ["Rain, falls", "Rain falls"], rubrics)
    assert verdict_rows(scored) == [[0.0, 1.0, 0.0], [1.0, 1.0, None]]
    assert len(judge.batches) == 1  # all judge questions of the batch together
    assert [q.rubric for q in judge.batches[0]] == ["PASS it mentions rain", "it is formal", "PASS it is short"]
    assert judge.batches[0][2].response == "Rain falls" and judge.batches[0][2].instruction == PROMPT
    assert fault_server.requests == 3
    assert scored.spans[0][0] is not None  # the verifier knows where the comma is
    assert scored.spans[0][1] is None and scored.spans[1][1] is None  # the judge does not


def test_judge_mode_sends_every_rubric_to_the_judge(judge, fault_server):
    scored = RoutingScorer(judge, mode="judge").score([PROMPT], ["Rain falls"], [[NO_COMMAS, Rubric("PASS")]])
    # The server says NO to the comma rubric (no PASS in it) although the verifier would pass it.
    assert verdict_rows(scored) == [[0.0, 1.0]]
    assert fault_server.requests == 2


def test_verifiers_mode_leaves_judge_rubrics_unknown():
    scorer = RoutingScorer(mode="verifiers")
    scored = scorer.score([PROMPT], ["Rain falls"], [[NO_COMMAS, Rubric("PASS it is short")]])
    assert verdict_rows(scored) == [[1.0, None]]
    assert scorer.stats() == {"scoring/unverifiable": 1.0}


def test_more_than_twenty_rubrics_all_get_verdicts(judge, fault_server):
    row = [NO_COMMAS] * 5 + [Rubric(f"PASS rubric {k}" if k % 2 else f"rubric {k}") for k in range(25)]
    scored = RoutingScorer(judge).score([PROMPT], ["Rain falls"], [row])
    assert scored.verdicts.shape == (1, 30)
    assert verdict_rows(scored) == [[1.0] * 5 + [float(k % 2) for k in range(25)]]
    assert len(judge.batches) == 1 and fault_server.requests == 25


def test_every_fault_in_one_batch_finishes_with_unknowns_where_no_answer_came(judge):
    answered = {"PASS [slow]": 1.0, "PASS [429x1]": 1.0, "[500x2]": 0.0, "PASS [hangx1]": 1.0, "PASS [bold]": 1.0}
    unanswered = ["PASS [500]", "PASS [hang]", "PASS [400]", "[maybe]", "[empty]", "[badjson]"]
    row = [Rubric(text) for text in [*answered, *unanswered]]
    scorer = RoutingScorer(judge)
    start = time.perf_counter()
    scored = scorer.score([PROMPT], ["Rain falls"], [row])
    assert time.perf_counter() - start < 2.5
    assert verdict_rows(scored) == [[*answered.values(), *[None] * len(unanswered)]]
    stats = scorer.stats()
    assert stats["judge/unknown"] == 3 and stats["judge/failures"] == 3
    assert stats["judge/retries"] == 1 + 2 + 1 + 2 + 2  # 429x1, 500x2, hangx1, then [500] and [hang] twice each


def test_unreachable_judge_keeps_verifier_verdicts():
    with LLMJudge(fast_config(f"http://127.0.0.1:{unused_port()}/v1")) as llm_judge:
        scored = RoutingScorer(llm_judge).score([PROMPT], ["Rain falls"], [[NO_COMMAS, Rubric("PASS")]])
    assert verdict_rows(scored) == [[1.0, None]]


def test_unknown_judge_verdicts_are_excluded_from_the_reward_not_failed(judge):
    reward = RubricReward(RoutingScorer(judge), aggregation="aon")
    rewards = reward([PROMPT], ["Rain falls"], [rubrics_to_json([Rubric("PASS"), Rubric("[maybe]")])])
    assert rewards == [1.0]


def test_unregistered_verifier_id_raises(judge):
    rubric = Rubric("No commas.", verifier="testbed:no_comas")
    with pytest.raises(UnknownVerifierError, match="no_commas"):
        RoutingScorer(judge).score([PROMPT], ["Rain falls"], [[rubric]])


def test_modes_are_checked():
    with pytest.raises(ValueError, match="unknown scoring mode"):
        RoutingScorer(mode="oracle")
    with pytest.raises(ValueError, match="no judge"):
        RoutingScorer(mode="hybrid")
    with pytest.raises(ValueError, match="needs a judge configuration"):
        scorer_from_config("judge")


def test_scorer_from_config_builds_the_judge(fault_server):
    scorer = scorer_from_config("hybrid", fast_config(fault_server.base_url))
    assert isinstance(scorer.judge, LLMJudge)
    scored = scorer.score([PROMPT], ["Rain, falls"], [[NO_COMMAS, Rubric("PASS")]])
    scorer.judge.close()
    assert verdict_rows(scored) == [[0.0, 1.0]]
    assert scorer_from_config("verifiers").judge is None


def test_code_verifiers_run_while_the_judge_batch_is_in_flight(fault_server, monkeypatch):
    """With a remote judge, a step waits for the longer of judging and verifying, not their sum."""
    seen_in_flight = []

    def waits_for_the_judge(response):
        deadline = time.monotonic() + 5
        while fault_server.requests == 0 and time.monotonic() < deadline:  # a sequential scorer times out here
            time.sleep(0.01)
        seen_in_flight.append(fault_server.requests > 0)
        return Verdict(passed=True, spans=None)

    monkeypatch.setitem(VERIFIERS, "test:waits_for_the_judge", waits_for_the_judge)
    rubrics = [Rubric("PASS [slow] kind", None), Rubric("checked in code", "test:waits_for_the_judge")]
    with LLMJudge(fast_config(fault_server.base_url)) as llm_judge:
        scored = RoutingScorer(llm_judge, mode="hybrid").score([PROMPT], ["A calm day."], [rubrics])
    assert seen_in_flight == [True]
    assert scored.verdicts.tolist() == [[1.0, 1.0]]


def test_a_local_judge_is_asked_in_the_calling_thread():
    """Only a network-bound judge gets a background thread; a local model would compete for the same cores."""

    class LocalJudge:
        threads: list = []

        def judge_batch(self, questions):
            self.threads.append(threading.current_thread())
            return [True] * len(questions)

        def stats(self):
            return {}

    judge = LocalJudge()
    scored = RoutingScorer(judge, mode="judge").score([PROMPT], ["A calm day."], [[Rubric("kind", None)]])
    assert judge.threads == [threading.current_thread()]
    assert scored.verdicts.tolist() == [[1.0]]
