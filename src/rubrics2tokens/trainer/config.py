"""`RTTConfig`: TRL's `GRPOConfig` plus the RTT fields (method.md §3)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from trl import GRPOConfig

from rubrics2tokens.advantages import AGGREGATIONS, COMBINE_METHODS, PARTITIONS
from rubrics2tokens.generation.rollout import ROLLOUT_BACKENDS, ROLLOUT_DTYPES
from rubrics2tokens.relevance.sources import RELEVANCE_SOURCES
from rubrics2tokens.trainer.completion_logprobs import LOGPROB_HEADS


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not valid; choose one of: {', '.join(choices)}")


def _refuse_per_response_options(config: "RTTConfig") -> None:
    """TRL options whose meaning silently changes when the advantages are ``(B, T)`` instead of ``(B,)``
    (read in TRL 1.16's ``GRPOTrainer._compute_loss``); each is refused with the reason."""
    if config.off_policy_mask_threshold is not None:
        raise ValueError(
            "off_policy_mask_threshold drops a whole high-KL sequence whose advantage is negative; with RTT's "
            "per-token advantages TRL tests the sign token by token and drops single tokens instead. Leave it unset, "
            "or set relevance_source 'none'.")
    if config.loss_type == "vespo":
        raise ValueError(
            "loss_type 'vespo' picks its sequence weight (vespo_k_*/vespo_lambda_*) by the sign of the advantage; with "
            "RTT's per-token advantages it picks per token, so one sequence gets several weights. Use another "
            "loss_type, or set relevance_source 'none'.")
    if config.max_tool_calling_iterations is not None and config.relevance_source in SPAN_SOURCES:
        raise ValueError(TOOLS_WITH_ORACLE_SPANS)


SPAN_SOURCES = ("oracle", "shuffled")  # the relevance sources built from the verifiers' character spans
TOOLS_WITH_ORACLE_SPANS = (
    "tool calling puts tool results into the completion ids, which the verifiers' spans (relevance_source 'oracle' "
    "or 'shuffled') do not see, so token credit lands on the wrong tokens. Use relevance_source 'model', "
    "'contrast', 'uniform' or 'none' with tools.")


@dataclass
class RTTConfig(GRPOConfig):
    """GRPO configuration with the RTT token-level term. Every GRPOConfig field keeps its meaning."""

    reward_aggregation: str = field(default="aon", metadata={
        "help": "Response reward from the known verdicts: 'aon' (1 if every rubric passes) or 'csr' "
                "(weighted fraction passed)."})
    token_partition: str = field(default="intra_sample", metadata={
        "help": "How token rewards are normalized: intra_sample (paper default), inter_sample, group_pooled, "
                "rubric_softmax, or signed (no normalization; only flagged tokens carry a verdict's sign)."})
    token_advantage_method: str = field(default="add", metadata={
        "help": "'add': A = A_res + coef * A_tok; 'mix': A = (1 - coef) * A_res + coef * A_tok."})
    token_advantage_coef: float = field(default=0.5, metadata={"help": "lambda in the combination above."})
    token_softmax_tau: float = field(default=1.0, metadata={"help": "Temperature of the rubric_softmax partition."})
    relevance_source: str = field(default="oracle", metadata={
        "help": "Where token relevance comes from: none (plain GRPO, same code path), uniform, random, oracle "
                "(the verifiers' deciding spans), shuffled (the oracle's flags on random tokens of the same "
                "response: the control for placement), model (a trained relevance model, see relevance_model), or "
                "contrast (the policy's log-probability with minus without each rubric; no trained model)."})
    relevance_model: str | None = field(default=None, metadata={
        "help": "Folder of a trained relevance model (from `rtt relevance train`), for relevance_source 'model'."})
    relevance_threshold: float = field(default=0.5, metadata={
        "help": "A token is flagged for a rubric when its relevance exceeds this; a (response, rubric) row that "
                "flags no token leaves that response's token-term average (method.md §5). Oracle rows are 0/1; "
                "learned rows are probabilities; contrast rows are scaled so 0.5 means the rubric makes the "
                "token at least e^(0.5 x contrast_scale) times more likely."})
    token_std_floor: float = field(default=0.01, metadata={
        "help": "Floor on the std of each z-scored set (intra_sample, inter_sample, group_pooled, rubric_softmax): a "
                "nearly constant relevance row is not blown up into unit-size credit. 0: the plain z-score. A 0/1 "
                "row with one flagged token in 10,000 has std 0.01, so the default leaves rows that flag a few "
                "tokens of a long response as they are (0.05 damped a row flagging one token of 400 or more: "
                "docs/token-credit.md section 6)."})
    relevance_batch_size: int = field(default=64, metadata={
        "help": "(rubric, response) windows per relevance-model forward pass."})
    rollout_backend: str = field(default="transformers", metadata={
        "help": "How completions are generated without vLLM: 'transformers' (TRL's model.generate path) or "
                "'static' (our batched decoder on a preallocated KV cache, plugged in as TRL's rollout_func; the same "
                "sampling semantics; faster with rollout_dtype, see docs/performance.md). With use_vllm, TRL's vLLM "
                "modes generate."})
    rollout_batch_size: int | None = field(default=None, metadata={
        "help": "Most sequences the 'static' backend decodes at once (bounds its KV cache); default all."})
    rollout_dtype: str = field(default="auto", metadata={
        "help": "Precision the 'static' backend samples in: 'auto' (bfloat16 where the device computes it natively: "
                "a CPU with AVX512-BF16 or AMX, a CUDA GPU with bf16; else the policy's dtype), 'float32' or "
                "'bfloat16'. The update keeps the policy's own precision; see docs/performance.md for the "
                "sampler/policy mismatch this causes and when to turn it off."})
    logprob_head: str = field(default="plain", metadata={
        "help": "How the update scores completion tokens on a CPU: 'plain' (the LM head over completion positions "
                "only, one float32 log-softmax; about 2 s faster per demo update, used while the logits fit in "
                "512 MB) or 'fused' (TRL's fused LM head over every position, TRL's default). On a GPU TRL's kernel is used "
                "either way (trainer/completion_logprobs.py)."})
    overlong_penalty_tokens: int = field(default=0, metadata={
        "help": "Penalize completions that run into max_completion_length: DAPO's soft overlong punishment (TRL's "
                "trl.rewards.get_soft_overlong_punishment) added to the reward, 0 up to max_completion_length - N "
                "tokens, then falling linearly to -1 at the limit (a truncated completion). 0: off. A collapse "
                "guard: see docs/token-credit.md."})
    keep_checkpoints: bool = field(default=False, metadata={
        "help": "Keep the run's checkpoints once it has finished. By default they are removed then: final/ holds the "
                "model, and a checkpoint adds only the optimizer and trainer state that --resume needs (for the "
                "135M demo policy 1.1 GB of a 1.6 GB checkpoint)."})
    zero_special_tokens: bool = field(default=True, metadata={
        "help": "Give EOS and other special tokens no token-level advantage and leave them out of its "
                "statistics (so the token term is no implicit length term)."})
    stop_credit: bool = field(default=True, metadata={
        "help": "Under zero_special_tokens, still let a source that flags the stop (the oracle: 'stopping early' "
                "for an unmet lower limit, method.md §5) put its credit on the stop token. false: the stop gets no "
                "token term from any source. Under intra_sample a row flagging the stop alone z-scores it to about "
                "-sqrt(length) (docs/study.md, the intra pilot)."})

    def __post_init__(self):
        with warnings.catch_warnings():
            # GRPOConfig itself sets transformers' deprecated `gradient_checkpointing*` names, so every args object
            # (and every copy TRL makes of one) warned, though the user chose nothing deprecated.
            warnings.filterwarnings("ignore", message=r"`gradient_checkpointing(_kwargs)?` is deprecated",
                                    category=FutureWarning)
            super().__post_init__()
        _check_choice("reward_aggregation", self.reward_aggregation, AGGREGATIONS)
        _check_choice("token_partition", self.token_partition, PARTITIONS)
        _check_choice("token_advantage_method", self.token_advantage_method, COMBINE_METHODS)
        _check_choice("relevance_source", self.relevance_source, RELEVANCE_SOURCES)
        _check_choice("rollout_backend", self.rollout_backend, ROLLOUT_BACKENDS)
        _check_choice("rollout_dtype", self.rollout_dtype, ROLLOUT_DTYPES)
        _check_choice("logprob_head", self.logprob_head, LOGPROB_HEADS)
        if self.rollout_backend != "transformers" and self.use_vllm:
            raise ValueError(f"rollout_backend={self.rollout_backend!r} and use_vllm=True both choose the generator; "
                             "keep one")
        if self.importance_sampling_level != "token":
            raise ValueError(
                "RTT needs importance_sampling_level='token': sequence-level importance sampling averages the "
                "token-level credit away. Remove importance_sampling_level (or set it to 'token').")
        if self.relevance_source != "none":
            _refuse_per_response_options(self)
        if self.token_advantage_method == "mix" and not 0.0 <= self.token_advantage_coef <= 1.0:
            raise ValueError(f"token_advantage_coef must lie in [0, 1] for 'mix', got {self.token_advantage_coef}")
        if self.token_advantage_method == "mix" and self.token_advantage_coef == 1.0 \
                and self.relevance_source != "none":
            raise ValueError("'mix' with token_advantage_coef=1.0 drops the response-level advantage entirely; "
                             "use 'add' or a coefficient below 1.")
        if self.relevance_source == "model" and not self.relevance_model:
            raise ValueError("relevance_source 'model' needs relevance_model: the folder of a trained relevance model")
        if not 0.0 <= self.relevance_threshold < 1.0:
            raise ValueError(f"relevance_threshold must lie in [0, 1), got {self.relevance_threshold}")
        if self.token_std_floor < 0:
            raise ValueError(f"token_std_floor must be >= 0, got {self.token_std_floor}")
        if not 0 <= self.overlong_penalty_tokens <= self.max_completion_length:
            raise ValueError(f"overlong_penalty_tokens must lie in [0, max_completion_length="
                             f"{self.max_completion_length}], got {self.overlong_penalty_tokens}")
        if self.token_softmax_tau <= 0:
            raise ValueError(f"token_softmax_tau must be > 0, got {self.token_softmax_tau}")
