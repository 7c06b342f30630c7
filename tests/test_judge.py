"""The LLM judge against a real local HTTP server that injects faults (tests/judge_server.py)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from judge_server import JudgeServer, fast_config, fault_server, unused_port  # noqa: F401  (fault_server is a fixture)
from rubrics2tokens.judge import (SYSTEM_PROMPT, JudgeConfig, JudgeQuestion, LLMJudge, LocalHFJudge, build_messages,
                                  parse_verdict)


def questions(*rubrics: str) -> list[JudgeQuestion]:
    return [JudgeQuestion(instruction="Write a haiku about rain.", response="Rain taps the window", rubric=rubric)
            for rubric in rubrics]


def judge_timed(config: JudgeConfig, rubrics: list[str]) -> tuple[list[bool | None], dict[str, float], float]:
    """Verdicts, stats and wall-clock seconds of one batch on a fresh judge."""
    with LLMJudge(config) as judge:
        start = time.perf_counter()
        verdicts = judge.judge_batch(questions(*rubrics))
        return verdicts, judge.stats(), time.perf_counter() - start


@pytest.mark.parametrize("reply, verdict", [
    ("YES", True), ("no", False), (" Yes\n", True), ("**NO**", False), ('"Yes."', True), ("`no`", False),
    ("Maybe?", None), ("", None), (None, None), ("YES, it does", None), ("NOPE", None), ("Y", None),
])
def test_parse_is_strict(reply, verdict):
    assert parse_verdict(reply) is verdict


def test_question_holds_instruction_response_and_rubric():
    system, user = build_messages(JudgeQuestion("Write {a} poem.", "Roses", "Mentions roses."))
    assert system == {"role": "system", "content": SYSTEM_PROMPT}
    assert "YES" in SYSTEM_PROMPT and "NO" in SYSTEM_PROMPT
    for text in ("Write {a} poem.", "Roses", "Mentions roses."):
        assert text in user["content"]


def test_answers_follow_the_server(fault_server):
    verdicts, stats, _ = judge_timed(fast_config(fault_server.base_url), ["PASS one", "fail two", "PASS [bold]"])
    assert verdicts == [True, False, True]
    assert stats["judge/calls"] == 3 and stats["judge/retries"] == 0 and stats["judge/unknown"] == 0
    assert stats["judge/latency_p50_s"] > 0


def test_stats_have_stable_float_names(fault_server):
    _, stats, _ = judge_timed(fast_config(fault_server.base_url), ["PASS"])
    assert set(stats) == {f"judge/{name}" for name in ("questions", "cache_hits", "calls", "retries", "unknown",
                                                        "failures", "prompt_tokens", "completion_tokens",
                                                        "replies_without_usage", "latency_p50_s", "latency_p90_s",
                                                        "latency_p99_s")}
    assert stats["judge/replies_without_usage"] == 1, "the test server reports no usage"
    assert all(isinstance(value, float) for value in stats.values())


def test_slow_replies_run_concurrently(fault_server):
    verdicts, _, seconds = judge_timed(fast_config(fault_server.base_url), [f"PASS [slow] {i}" for i in range(8)])
    assert verdicts == [True] * 8
    assert seconds < 4 * fault_server.slow_s  # 8 slow replies in about the time of one, not of 8
    assert fault_server.max_in_flight == 8


def test_concurrency_is_bounded(fault_server):
    config = fast_config(fault_server.base_url, max_concurrency=3)
    verdicts, _, seconds = judge_timed(config, [f"[slow] {i}" for i in range(9)])
    assert verdicts == [False] * 9
    assert fault_server.max_in_flight == 3
    assert seconds >= 3 * fault_server.slow_s  # three waves of three


def test_reply_slower_than_timeout_is_unknown_after_retries(fault_server):
    config = fast_config(fault_server.base_url, timeout_s=0.2, max_retries=1)
    verdicts, stats, seconds = judge_timed(config, ["PASS [hang]"])
    assert verdicts == [None]
    assert stats["judge/calls"] == 2 and stats["judge/retries"] == 1 and stats["judge/failures"] == 1
    assert seconds < 1.5


def test_timeout_then_answer(fault_server):
    config = fast_config(fault_server.base_url, timeout_s=0.2)
    verdicts, stats, seconds = judge_timed(config, ["PASS [hangx1]"])
    assert verdicts == [True] and stats["judge/retries"] == 1 and stats["judge/failures"] == 0
    assert seconds < 1.5


def test_429_honours_retry_after(fault_server):
    config = fast_config(fault_server.base_url, backoff_max_s=1.0)
    verdicts, stats, seconds = judge_timed(config, ["PASS [429x2]"])
    assert verdicts == [True] and stats["judge/retries"] == 2
    assert 2 * float(fault_server.retry_after) <= seconds < 1.5


def test_retry_after_is_capped():
    with JudgeServer(retry_after="30") as server:
        verdicts, stats, seconds = judge_timed(fast_config(server.base_url), ["[429x1]"])
    assert verdicts == [False] and stats["judge/retries"] == 1
    assert seconds < 1.0


def test_500s_then_answer(fault_server):
    verdicts, stats, _ = judge_timed(fast_config(fault_server.base_url), ["PASS [500x2]", "[500x1]"])
    assert verdicts == [True, False]
    assert stats["judge/retries"] == 3 and stats["judge/failures"] == 0


def test_always_500_is_unknown(fault_server):
    verdicts, stats, seconds = judge_timed(fast_config(fault_server.base_url, max_retries=3), ["PASS [500]"])
    assert verdicts == [None]
    assert stats["judge/calls"] == 4 and stats["judge/retries"] == 3 and stats["judge/failures"] == 1
    assert seconds < 1.0


def test_client_error_is_not_retried(fault_server):
    verdicts, stats, _ = judge_timed(fast_config(fault_server.base_url), ["PASS [400]"])
    assert verdicts == [None]
    assert stats["judge/calls"] == 1 and stats["judge/retries"] == 0 and stats["judge/failures"] == 1


def test_garbage_replies_are_unknown_never_fails(fault_server, caplog):
    with caplog.at_level(logging.WARNING, logger="rubrics2tokens.judge"):
        verdicts, stats, _ = judge_timed(fast_config(fault_server.base_url), ["[maybe]", "[empty]", "[badjson]"])
    assert verdicts == [None, None, None]
    assert stats["judge/unknown"] == 3 and stats["judge/retries"] == 0 and stats["judge/failures"] == 0
    assert "'Maybe?'" in caplog.text and "not json" in caplog.text


def test_refused_connection_is_unknown():
    config = fast_config(f"http://127.0.0.1:{unused_port()}/v1")
    verdicts, stats, seconds = judge_timed(config, ["PASS a", "PASS b"])
    assert verdicts == [None, None]
    assert stats["judge/calls"] == 6 and stats["judge/retries"] == 4 and stats["judge/failures"] == 2
    assert seconds < 1.0


def test_cache_persists_and_never_stores_unknowns(fault_server, tmp_path):
    config = fast_config(fault_server.base_url, cache_path=str(tmp_path / "judge.sqlite"))
    rubrics = ["PASS one", "fail two", "[maybe]"]
    first, _, _ = judge_timed(config, rubrics)
    assert first == [True, False, None] and fault_server.requests == 3

    second, stats, _ = judge_timed(config, rubrics)
    assert second == first
    assert stats["judge/cache_hits"] == 2 and stats["judge/calls"] == 1  # only the unknown is asked again
    assert fault_server.requests == 4

    _, stats, _ = judge_timed(config, rubrics[:2])
    assert stats["judge/calls"] == 0 and fault_server.requests == 4

    _, stats, _ = judge_timed(fast_config(fault_server.base_url, model="other-judge", cache_path=config.cache_path),
                              rubrics[:2])
    assert stats["judge/cache_hits"] == 0  # another judge model never reuses these verdicts


def test_repeated_question_is_asked_once(fault_server):
    verdicts, stats, _ = judge_timed(fast_config(fault_server.base_url), ["PASS same"] * 4)
    assert verdicts == [True] * 4 and stats["judge/questions"] == 4 and stats["judge/calls"] == 1


def test_api_key_header_only_when_the_variable_is_set(fault_server, monkeypatch):
    monkeypatch.setenv("RTT_TEST_JUDGE_KEY", "sk-test")
    judge_timed(fast_config(fault_server.base_url, api_key_env="RTT_TEST_JUDGE_KEY"), ["PASS"])
    monkeypatch.delenv("RTT_TEST_JUDGE_KEY")
    judge_timed(fast_config(fault_server.base_url, api_key_env="RTT_TEST_JUDGE_KEY"), ["PASS"])
    assert fault_server.authorization == ["Bearer sk-test", None]


def test_works_inside_a_running_event_loop(fault_server):
    async def caller() -> list[bool | None]:
        with LLMJudge(fast_config(fault_server.base_url)) as judge:
            return judge.judge_batch(questions("PASS", "fail"))

    assert asyncio.run(caller()) == [True, False]


def test_batch_timeout_bounds_a_batch(fault_server):
    config = fast_config(fault_server.base_url, timeout_s=0.5, max_retries=4, batch_timeout_s=0.3)
    verdicts, stats, seconds = judge_timed(config, ["PASS quick", "PASS [hang]"])
    assert verdicts == [True, None] and stats["judge/failures"] == 1
    assert seconds < 1.0


def test_empty_batch_asks_nothing(fault_server):
    verdicts, stats, _ = judge_timed(fast_config(fault_server.base_url), [])
    assert verdicts == [] and stats["judge/calls"] == 0


def test_local_hf_judge_asks_the_template(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    asked = []
    apply_chat_template = tokenizer.apply_chat_template

    def recording_template(messages, **kwargs):
        asked.append(messages)
        return apply_chat_template(messages, **kwargs)

    tokenizer.apply_chat_template = recording_template
    judge = LocalHFJudge(model, tokenizer, batch_size=2)
    batch = questions("PASS one", "two", "three")
    verdicts = judge.judge_batch(batch)  # a random model: any mix of YES, NO and unknown
    assert len(verdicts) == 3 and all(verdict in (True, False, None) for verdict in verdicts)
    assert asked == [build_messages(question) for question in batch]
    stats = judge.stats()
    assert stats["judge/questions"] == 3 and stats["judge/unknown"] == sum(v is None for v in verdicts)
