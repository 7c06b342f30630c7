"""`RTTGRPOTrainer`: TRL's GRPOTrainer with the RTT token-level advantage.

Only two TRL steps are wrapped, both calling ``super()``:
- ``_calculate_rewards``: TRL runs our `RubricReward` (which scores every rubric); we time it.
- ``_generate_and_score_completions``: TRL returns per-response advantages ``(B,)``; we add the
  token-level term and hand TRL ``(B, T)`` advantages, which its per-token clipped surrogate takes
  as they are.
"""

from __future__ import annotations

import functools
import json
import logging
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from transformers import PreTrainedModel
from trl import GRPOTrainer
from trl.rewards import get_soft_overlong_punishment

from rubrics2tokens.advantages import LOCAL_PARTITIONS, combine_advantages, response_rewards, token_advantages
from rubrics2tokens.generation.rollout import make_static_rollout
from rubrics2tokens.relevance.sources import RelevanceInputs, RelevanceSource, build_relevance_source
from rubrics2tokens.scoring.router import COUNTER_METRICS
from rubrics2tokens.scoring.scorer import RubricReward, RubricScorer, ScoredBatch
from rubrics2tokens.trainer.config import SPAN_SOURCES, TOOLS_WITH_ORACLE_SPANS, RTTConfig
from rubrics2tokens.trainer.completion_logprobs import score_labelled_rows_on_cpu
from rubrics2tokens.trainer.heldout import HeldoutWriter, heldout_seed, response_records, unmasked_completion_mask
from rubrics2tokens.trainer.master_weights import has_low_precision_parameters, with_master_weights

logger = logging.getLogger(__name__)

JUDGE_UNKNOWN_WARNING = 0.5
"""A batch whose judge verdicts are unknown at least this often gets a "judge unreachable?" warning."""


def gather_padded(accelerator: Accelerator, tensor: torch.Tensor, dims: Sequence[int], pad_value: float
                  ) -> torch.Tensor:
    """Gather rows from every process after padding ``dims`` to their largest size across processes."""
    for dim in dims:
        tensor = accelerator.pad_across_processes(tensor, dim=dim, pad_index=pad_value)
    return accelerator.gather(tensor)


def rtt_token_advantages(accelerator: Accelerator, verdicts: torch.Tensor, rubric_weights: torch.Tensor,
                         weights: torch.Tensor, token_mask: torch.Tensor, group_size: int, args: RTTConfig
                         ) -> torch.Tensor:
    """Token-level advantages ``(B, T)`` of this process's rows.

    verdicts, rubric_weights: (B, K); weights: (B, K, T) with all-NaN rows for unknown relevance;
    token_mask: (B, T). A row that flags no token of the mask (no weight above
    ``args.relevance_threshold``), unknown rows included, leaves its response's average over rubrics
    (method.md §5): an empty row must not dilute the others. It gets averaging weight 0 and keeps its
    verdict, so it stays in the z-score sets that compare verdicts across a group (`inter_sample`,
    `group_pooled`, `rubric_softmax`) and the other rows' statistics do not change. A GRPO group can span
    processes, so partitions that compare rows of a group gather every process's rows first (padding K
    and T) and keep this process's slice.
    """
    flags_nothing = ~((weights > args.relevance_threshold) & token_mask.bool()[:, None, :]).any(dim=-1)  # (B, K)
    rubric_weights = rubric_weights.masked_fill(flags_nothing, 0.0)
    weights = weights.nan_to_num(0.0)
    options = dict(partition=args.token_partition, tau=args.token_softmax_tau, min_std=args.token_std_floor)
    if args.token_partition in LOCAL_PARTITIONS:  # each row depends on itself only: no gather needed
        return token_advantages(verdicts, weights, token_mask, group_size=1, rubric_weights=rubric_weights,
                                **options)
    local_rows, local_length = token_mask.shape
    all_advantages = token_advantages(
        gather_padded(accelerator, verdicts, (1,), float("nan")),
        gather_padded(accelerator, weights, (1, 2), 0.0),
        gather_padded(accelerator, token_mask, (1,), 0),
        group_size=group_size,
        rubric_weights=gather_padded(accelerator, rubric_weights, (1,), 0.0),
        **options,
    )
    start = accelerator.process_index * local_rows
    return all_advantages[start:start + local_rows, :local_length]


def only_where_scored(reward_func: Callable[..., list[float | None]], rubric_reward: RubricReward
                      ) -> Callable[..., list[float | None]]:
    """``reward_func`` with None (TRL's "unscorable") for every response the rubric reward could not score.

    TRL calls a response unscorable only when every reward function returns None for it: its reward is
    then left out of the group's baseline and its advantage is 0. A length penalty always has a value,
    so without this a response whose verdicts are all unknown (the judge down) would be trained on the
    penalty alone, as if it had scored 0. TRL calls the reward functions in order, so ``rubric_reward``
    (first) has scored this batch when this one runs.
    """

    @functools.wraps(reward_func)  # keeps the function's name: TRL names the reward column after it
    def reward(*args: Any, **kwargs: Any) -> list[float | None]:
        values = reward_func(*args, **kwargs)
        unscorable = torch.isnan(rubric_reward.last.verdicts).all(dim=1).tolist()
        return [None if skip else value for value, skip in zip(values, unscorable, strict=True)]

    return reward


def _prompt_ids(inputs: list[dict[str, Any]]) -> list[str]:
    """The dataset's ``id`` of each row (rows built without one: the prompt itself)."""
    return [str(row["id"]) if "id" in row else json.dumps(row["prompt"]) for row in inputs]


def credit_mask(completion_ids: torch.Tensor, loss_mask: torch.Tensor, scored: ScoredBatch,
                special_ids: torch.Tensor, stop_ids: torch.Tensor, source_flags_stop: bool) -> torch.Tensor:
    """``(B, T)`` bool: the tokens that may carry token-level credit under ``zero_special_tokens``.

    The loss mask without special tokens (so the token term is no implicit length term), except, when
    the relevance source puts weight on the stop (``source_flags_stop``: the oracle), the stop token of
    a response one of whose known verdicts blames the stop (method.md §5): stopping early is then the
    cause, and the stop token is where that credit goes. Under any other source the stop token would
    get a z-scored value from a weight its source never meant for it, so it stays masked.
    """
    special = torch.isin(completion_ids, special_ids.to(completion_ids.device))
    if not source_flags_stop:
        return loss_mask.bool() & ~special
    blames_stop = (scored.stops & ~torch.isnan(scored.verdicts)).any(dim=1).to(completion_ids.device)  # (B,)
    blamed_stop = torch.isin(completion_ids, stop_ids.to(completion_ids.device)) & blames_stop[:, None]
    return loss_mask.bool() & (~special | blamed_stop)


class RTTGRPOTrainer(GRPOTrainer):
    """GRPO whose advantages get a token-level term from rubric verdicts x token relevance.

    Args:
        model: policy (Hub id, path, or a loaded model), as for `GRPOTrainer`.
        scorer: a `RubricScorer` giving the verdict matrix of each batch.
        args: an `RTTConfig`.
        relevance: a `RelevanceSource`; by default built from ``args.relevance_source``.
        reward_funcs: extra TRL reward functions, summed with the rubric reward (optional).
        **kwargs: everything else `GRPOTrainer` takes (``train_dataset`` needs ``prompt`` and
            ``rubrics_json`` columns, see `rubrics2tokens.data.dataset`).
    """

    def __init__(self, model: Any, scorer: RubricScorer, args: RTTConfig, relevance: RelevanceSource | None = None,
                 reward_funcs: list | None = None, **kwargs: Any):
        if not isinstance(args, RTTConfig):
            raise TypeError(f"RTTGRPOTrainer needs an RTTConfig, got {type(args).__name__}")
        if kwargs.get("tools") and args.relevance_source in SPAN_SOURCES:
            raise ValueError(TOOLS_WITH_ORACLE_SPANS)
        self.rubric_reward = RubricReward(scorer, aggregation=args.reward_aggregation)
        if args.rollout_backend == "static":
            kwargs.setdefault("rollout_func", make_static_rollout(args.rollout_batch_size, args.rollout_dtype))
        reward_funcs = [self.rubric_reward, *(reward_funcs or [])]
        if args.overlong_penalty_tokens:
            reward_funcs.append(only_where_scored(
                get_soft_overlong_punishment(args.max_completion_length, args.overlong_penalty_tokens),
                self.rubric_reward))
        with warnings.catch_warnings():
            # TRL calls any rollout_func experimental; the static backend's is ours, tested against TRL's own path
            warnings.filterwarnings("ignore", message="You are using 'rollout_func', which is an experimental")
            super().__init__(model=model, reward_funcs=reward_funcs, args=args, **kwargs)
        if args.relevance_source == "none":
            self.relevance = None
        else:
            self.relevance = relevance or build_relevance_source(
                args.relevance_source, self._tokenizer, args.seed, args.relevance_model, args.relevance_batch_size,
                policy=self.model)
        self._special_ids = torch.tensor(sorted(set(self._tokenizer.all_special_ids)), dtype=torch.long)
        # TRL's stop set (the tokenizer's EOS and the generation config's): what `stop_token_ids` gives
        self._stop_ids = torch.tensor(self.eos_token_ids, dtype=torch.long)
        self.heldout = HeldoutWriter(args.output_dir)
        self._counter_totals: dict[str, float] = {}  # the scorer's counters, all processes, at the last batch
        self.add_callback(self.heldout)
        self._use_master_weights()
        if args.logprob_head == "plain":  # the policy and, with beta > 0, the reference (PEFT keeps TRL's head)
            for model_to_score in (self.model, self.ref_model):
                if isinstance(model_to_score, PreTrainedModel):
                    score_labelled_rows_on_cpu(model_to_score, self.temperature)

    def _use_master_weights(self) -> None:
        """A bf16/fp16 policy trains with float32 master weights (trainer/master_weights.py), unless the caller
        chose the optimizer or DeepSpeed/FSDP keep their own."""
        if (self.optimizer is not None or self.optimizer_cls_and_kwargs is not None or self.is_deepspeed_enabled
                or self.is_fsdp_enabled or not has_low_precision_parameters(self.model)):
            return
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, self.model)
        self.optimizer_cls_and_kwargs = (with_master_weights(optimizer_cls), optimizer_kwargs)

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        start = time.perf_counter()
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._scoring_seconds = time.perf_counter() - start
        return rewards_per_func

    def _generate_and_score_completions(self, inputs):
        mode = "train" if self.model.training else "eval"
        prompt_ids = _prompt_ids(inputs)
        if mode == "train":
            output = super()._generate_and_score_completions(inputs)
        else:  # held-out evaluation: the same random numbers at every evaluation (trainer/heldout.py)
            cuda = self.accelerator.device.type == "cuda"
            with torch.random.fork_rng(devices=[self.accelerator.device] if cuda else []):
                torch.manual_seed(heldout_seed(self.args.seed, prompt_ids))
                output = super()._generate_and_score_completions(inputs)
        scored = self.rubric_reward.last
        self._log_rubric_metrics(mode, scored)
        self._metrics[mode]["rtt/time/scoring_s"].append(self._scoring_seconds)
        self._log_scoring_counters(mode)
        if self.relevance is not None:  # plain GRPO: TRL's (B,) advantages stay as they are
            self._add_token_credit(output, mode, scored, [row["prompt"] for row in inputs])
        if mode == "eval":
            mask = output["completion_mask"]
            if self.mask_truncated_completions:  # TRL zeroed the truncated ones; a record describes every response
                mask = unmasked_completion_mask(output["completion_ids"], self.eos_token_ids)
            records = response_records(self.state.global_step, prompt_ids, output["completion_ids"], mask, scored,
                                       output["advantages"], self._tokenizer, self._response_entropies(output, mask),
                                       self.eos_token_ids)
            self.heldout.buffer.extend(gather_object(records))
        return output

    @torch.no_grad()
    def _response_entropies(self, output: dict[str, Any], completion_mask: torch.Tensor) -> torch.Tensor:
        """``(B,)`` mean entropy of the policy's next-token distribution over each response's tokens (``(B, T)``
        mask; TRL's ``entropy`` metric, per response)."""
        completion_ids = output["completion_ids"]
        input_ids = torch.cat([output["prompt_ids"], completion_ids], dim=1)
        attention_mask = torch.cat([output["prompt_mask"], completion_mask], dim=1)
        _, entropies, _ = self._get_per_token_logps_and_entropies(
            self.model, input_ids, attention_mask, completion_ids.size(1), compute_entropy=True)
        mask = completion_mask.float()
        return (entropies * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)

    def _add_token_credit(self, output: dict[str, Any], mode: str, scored: ScoredBatch, prompts: list) -> None:
        """Turn TRL's ``(B,)`` response advantages in ``output`` into ``(B, T)`` ones with the token term."""
        completion_ids, completion_mask = output["completion_ids"], output["completion_mask"]
        loss_mask = completion_mask * output["tool_mask"] if "tool_mask" in output else completion_mask
        start = time.perf_counter()
        weights = self.relevance(RelevanceInputs(completion_ids, completion_mask, scored, prompts))
        relevance_seconds = time.perf_counter() - start

        start = time.perf_counter()
        token_mask = loss_mask.bool()
        if self.args.zero_special_tokens:
            token_mask = credit_mask(completion_ids, token_mask, scored, self._special_ids, self._stop_ids,
                                     self.args.stop_credit and getattr(self.relevance, "flags_stop", False))
        group_size = self.num_generations if mode == "train" else self.num_generations_eval
        device = completion_ids.device
        token_adv = rtt_token_advantages(
            self.accelerator, scored.verdicts.to(device), scored.rubric_weights.to(device), weights.to(device),
            token_mask.float(), group_size, self.args)
        output["advantages"] = combine_advantages(
            output["advantages"], token_adv, loss_mask, method=self.args.token_advantage_method,
            coef=self.args.token_advantage_coef)
        advantage_seconds = time.perf_counter() - start

        self._log_token_metrics(mode, token_adv, token_mask, output["advantages"], loss_mask)
        self._metrics[mode]["rtt/time/relevance_s"].append(relevance_seconds)
        self._metrics[mode]["rtt/time/advantages_s"].append(advantage_seconds)

    def _log_scoring_counters(self, mode: str) -> None:
        """The scorer's counters as this batch's increments summed over every process (each process counts
        from its start; logging the running totals made them grow with the run and averaged them per log), its
        latency percentiles as they are, and a warning when most of the batch's judge verdicts are unknown."""
        stats = getattr(self.rubric_reward.scorer, "stats", dict)()
        counters = [name for name in COUNTER_METRICS if name in stats]
        for name in stats.keys() - set(counters):
            self._metrics[mode][name].append(stats[name])
        if not counters:
            return
        totals = torch.tensor([stats[name] for name in counters], dtype=torch.float64,
                              device=self.accelerator.device)
        totals = self.accelerator.reduce(totals, reduction="sum").tolist()
        increments = {name: total - self._counter_totals.get(name, 0.0) for name, total in zip(counters, totals)}
        self._counter_totals = dict(zip(counters, totals))
        for name, increment in increments.items():
            self._metrics[mode][name].append(increment)
        asked = increments.get("judge/questions", 0.0)
        unanswered = increments.get("judge/unknown", 0.0) + increments.get("judge/failures", 0.0)
        if asked and unanswered / asked >= JUDGE_UNKNOWN_WARNING and self.accelerator.is_main_process:
            logger.warning("judge unreachable? step %d: %d of %d judge verdicts are unknown (%d without a reply, "
                           "%d unreadable); those rubrics are left out of the reward", self.state.global_step,
                           unanswered, asked, increments.get("judge/failures", 0), increments.get("judge/unknown", 0))

    def _log_rubric_metrics(self, mode: str, scored: ScoredBatch) -> None:
        """Pass rate per rubric family, all-pass rate and mean weighted satisfaction, over every process's rows."""
        verdicts = gather_padded(self.accelerator, scored.verdicts.to(self.accelerator.device), (1,), float("nan"))
        known = ~torch.isnan(verdicts)
        families = gather_object(scored.families)
        by_family: dict[str, list[float]] = defaultdict(list)
        for i, row in enumerate(families):
            for k, family in enumerate(row):
                if known[i, k]:
                    by_family[family].append(verdicts[i, k].item())
        for family, values in sorted(by_family.items()):
            self._metrics[mode][f"rubrics/pass/{family.replace(':', '/')}"].append(sum(values) / len(values))
        # the rewards' own AON and (weighted) CSR; NaN for rows with nothing to average
        weights = gather_padded(self.accelerator, scored.rubric_weights.to(self.accelerator.device), (1,), 0.0)
        for name, values in (("all_pass", response_rewards(verdicts, "aon")),
                             ("satisfaction", response_rewards(verdicts, "csr", weights))):
            if not values.isnan().all():
                self._metrics[mode][f"rubrics/{name}"].append(values.nanmean().item())
        slots = sum(len(row) for row in families)  # real rubric slots; padding slots are not counted
        self._metrics[mode]["rubrics/known_frac"].append(known.sum().item() / max(slots, 1))

    def _log_token_metrics(self, mode: str, token_adv: torch.Tensor, token_mask: torch.Tensor,
                           advantages: torch.Tensor, loss_mask: torch.Tensor) -> None:
        def masked_stats(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            mask = mask.float()
            return torch.stack([(values * mask).sum(), (values.abs() * mask).sum(), (values.square() * mask).sum(),
                                ((values > 0).float() * mask).sum(), mask.sum()])

        for name, values, mask in (("token_adv", token_adv, token_mask), ("advantage", advantages, loss_mask)):
            total, absolute, square, positive, count = self.accelerator.reduce(
                masked_stats(values, mask), reduction="sum").tolist()
            count = max(count, 1.0)
            mean = total / count
            self._metrics[mode][f"rtt/{name}/mean"].append(mean)
            self._metrics[mode][f"rtt/{name}/abs_mean"].append(absolute / count)
            self._metrics[mode][f"rtt/{name}/std"].append(max(square / count - mean * mean, 0.0) ** 0.5)
            self._metrics[mode][f"rtt/{name}/positive_frac"].append(positive / count)
