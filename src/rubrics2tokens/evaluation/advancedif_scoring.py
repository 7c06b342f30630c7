"""Judging AdvancedIF responses by both protocols, and their summary.

Each response is judged twice:

- the reference protocol (`rubrics2tokens.judge.rubric_set`): one request with the conversation, the response and
  all the prompt's rubrics, answered in JSON with a verdict per rubric and an overall ``SATISFIED_ALL`` flag;
- ours (`rubrics2tokens.judge.prompt`): one strict YES/NO question per rubric, as rubrics are judged in training.

Summary (each prompt averaged over its responses first, as for the other benchmarks):

- ``satisfied_all``: the share of prompts whose ``SATISFIED_ALL`` flag is true, AdvancedIF's headline; an unknown
  flag counts as not true, and the share is null (None) when no reply carried a readable flag at all;
- ``all_rubrics_pass``: the share of prompts whose every rubric our questions judged satisfied;
- ``rubric_satisfaction``: the share of rubrics our questions judged satisfied;
- ``unknown``: responses whose reply carried no readable flag (``flags``) and our per-rubric verdicts that are
  neither YES nor NO (``rubric_verdicts``); both count as not satisfied above;

for all prompts and, under ``by_task``, for each task.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any

from tqdm.auto import tqdm

from rubrics2tokens.evaluation.advancedif import TASKS, AdvancedIFPrompt, render_conversation
from rubrics2tokens.judge import Judge, JudgeQuestion
from rubrics2tokens.judge.rubric_set import ChatClient, RubricSetQuestion, RubricSetVerdict, judge_rubric_sets

RESPONSES_PER_BATCH = 64
"""Responses judged together: a batch's questions go out concurrently, and the progress bar moves per batch."""


@dataclass(frozen=True)
class AdvancedIFVerdict:
    """Both protocols' verdicts on one response."""

    item: AdvancedIFPrompt
    response_index: int
    rubric_verdicts: tuple[bool | None, ...]
    """Our per-rubric YES/NO verdicts, aligned with ``item.rubrics``."""
    rubric_set: RubricSetVerdict
    """The reference protocol's reply: its flag, its per-rubric verdicts and the reply text."""

    @property
    def all_rubrics_pass(self) -> bool:
        return all(verdict is True for verdict in self.rubric_verdicts)

    def to_json(self) -> dict[str, Any]:
        return {"key": self.item.key, "task": self.item.task, "response_index": self.response_index,
                "rubrics": list(self.item.rubrics),
                "per_rubric": {"verdicts": list(self.rubric_verdicts), "all_pass": self.all_rubrics_pass},
                "reference": {"satisfied_all": self.rubric_set.satisfied_all,
                              "verdicts": list(self.rubric_set.rubric_verdicts), "reply": self.rubric_set.reply}}


def judge_responses(responses: Sequence[tuple[AdvancedIFPrompt, str]], judge: Judge, chat: ChatClient,
                    reply_tokens: int) -> list[AdvancedIFVerdict]:
    """Both protocols' verdicts on each (prompt, response); a prompt's responses are numbered 0, 1, ... in the
    order given. ``chat`` answers the reference protocol in at most ``reply_tokens`` tokens."""
    seen: dict[str, int] = defaultdict(int)
    numbered = []
    for item, response in responses:
        numbered.append((item, response, seen[item.key]))
        seen[item.key] += 1
    verdicts = []
    with tqdm(total=len(numbered), desc="judging", unit="response") as progress:
        for start in range(0, len(numbered), RESPONSES_PER_BATCH):
            batch = numbered[start:start + RESPONSES_PER_BATCH]
            verdicts.extend(_judge_batch(batch, judge, chat, reply_tokens))
            progress.update(len(batch))
    return verdicts


def _judge_batch(batch: list[tuple[AdvancedIFPrompt, str, int]], judge: Judge, chat: ChatClient,
                 reply_tokens: int) -> list[AdvancedIFVerdict]:
    questions = [JudgeQuestion(item.instruction, response, rubric) for item, response, _ in batch
                 for rubric in item.rubrics]
    answers = iter(judge.judge_batch(questions))
    rubric_sets = judge_rubric_sets(chat, [RubricSetQuestion(render_conversation(item.messages), response,
                                                             item.rubrics) for item, response, _ in batch],
                                    reply_tokens)
    return [AdvancedIFVerdict(item, index, tuple(next(answers) for _ in item.rubrics), rubric_set)
            for (item, _, index), rubric_set in zip(batch, rubric_sets)]


def summarize_advancedif(verdicts: Sequence[AdvancedIFVerdict], judge_name: str) -> dict[str, Any]:
    """The summary of the module docstring, for all prompts and per task (in `TASKS` order)."""
    by_prompt: dict[str, list[AdvancedIFVerdict]] = defaultdict(list)
    for verdict in verdicts:
        by_prompt[verdict.item.key].append(verdict)
    groups = list(by_prompt.values())
    by_task = {task: _scores([group for group in groups if group[0].item.task == task]) for task in TASKS
               if any(group[0].item.task == task for group in groups)}
    return {"benchmark": "advancedif", "judge": judge_name, **_scores(groups), "by_task": by_task}


def _scores(groups: list[list[AdvancedIFVerdict]]) -> dict[str, Any]:
    """The summary's figures over prompts, each prompt given as the verdicts of its responses."""
    num_rubrics = sum(len(group[0].item.rubrics) for group in groups)
    any_flag = any(verdict.rubric_set.satisfied_all is not None for group in groups for verdict in group)
    satisfied = [fmean(verdict.rubric_set.satisfied_all is True for verdict in group) for group in groups]
    all_pass = [fmean(verdict.all_rubrics_pass for verdict in group) for group in groups]
    passes = [fmean(sum(v is True for v in verdict.rubric_verdicts) for verdict in group) for group in groups]
    return {"n_prompts": len(groups), "n_responses": sum(len(group) for group in groups), "n_rubrics": num_rubrics,
            "satisfied_all": fmean(satisfied) if any_flag else None,
            "all_rubrics_pass": fmean(all_pass) if groups else None,
            "rubric_satisfaction": sum(passes) / num_rubrics if num_rubrics else None,
            "unknown": {"flags": sum(verdict.rubric_set.satisfied_all is None for group in groups for verdict in group),
                        "rubric_verdicts": sum(v is None for group in groups for verdict in group
                                               for v in verdict.rubric_verdicts)}}


def format_advancedif_summary(summary: dict[str, Any]) -> str:
    """The summary as printed lines: all prompts, then each task."""
    lines = [f"advancedif: {summary['n_prompts']} prompts, {summary['n_responses']} responses, "
             f"{summary['n_rubrics']} rubrics, judged by {summary['judge']}",
             *_score_lines("all", summary)]
    for task, scores in summary["by_task"].items():
        lines += _score_lines(f"{task} ({scores['n_prompts']} prompts)", scores)
    return "\n".join(lines)


def _score_lines(title: str, scores: dict[str, Any]) -> list[str]:
    def share(value: float | None) -> str:
        return f"{'null':>6}" if value is None else f"{value:.4f}"

    unknown = scores["unknown"]
    lines = [f"{title}:",
             f"  satisfied_all       {share(scores['satisfied_all'])}   (reference protocol: SATISFIED_ALL flag "
             "true; AdvancedIF's headline)",
             f"  all_rubrics_pass    {share(scores['all_rubrics_pass'])}   (ours: every rubric judged YES)",
             f"  rubric_satisfaction {share(scores['rubric_satisfaction'])}   (ours: rubrics judged YES)"]
    if unknown["flags"] or unknown["rubric_verdicts"]:
        lines.append(f"  unknown: {unknown['flags']} replies without a readable SATISFIED_ALL flag, "
                     f"{unknown['rubric_verdicts']} per-rubric replies neither YES nor NO (counted as not satisfied)")
    return lines
