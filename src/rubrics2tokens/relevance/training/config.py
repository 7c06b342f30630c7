"""The configuration of a relevance-model training run (`rtt relevance train CONFIG.yaml`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from rubrics2tokens.models.loading import MINILM_BACKBONE
from rubrics2tokens.relevance.model import DEFAULT_TEMPLATE, VERDICT_TEMPLATE, RelevanceModelConfig, check_attention
from rubrics2tokens.yaml_config import ConfigError, build_config, read_config_tree

CAPITAL_MARK = "^"  # precedes every capital letter for tokenizers that lowercase; its own token in BERT vocabularies


@dataclass
class RelevanceTrainingConfig:
    train_file: str = field(default="", metadata={
        "help": "Label JSONL to train on (schema in relevance/labels.py); relative to the config file."})
    eval_file: str | None = field(default=None, metadata={
        "help": "Held-out label JSONL for periodic evaluation and the best checkpoint; relative to the config "
                "file. Without it, eval_fraction of train_file's prompts are held out."})
    eval_fraction: float = field(default=0.1, metadata={
        "help": "Fraction of train_file's prompt ids held out when eval_file is not given. The split is by "
                "prompt: every pair of a held-out prompt stays out of training."})
    backbone: str = field(default=MINILM_BACKBONE, metadata={
        "help": f"Hugging Face backbone (encoder or decoder) that gets a one-logit token head: a Hub id, a "
                f"folder, '{MINILM_BACKBONE}' or 'embedded:smollm2-135m-instruct' (the policy's own)."})
    output_dir: str = field(default="runs/relevance", metadata={
        "help": "Where best/, last/ and metrics.jsonl go."})
    epochs: float = field(default=3.0, metadata={"help": "Passes over the training pairs (ignored with max_steps)."})
    max_steps: int | None = field(default=None, metadata={
        "help": "Optimizer steps to train for; overrides epochs."})
    batch_size: int = field(default=32, metadata={"help": "Model inputs (pair windows) per step."})
    learning_rate: float = field(default=5e-5, metadata={"help": "Peak AdamW learning rate."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay on matrices (not on biases "
                                                                 "or norms)."})
    warmup_fraction: float = field(default=0.06, metadata={
        "help": "Fraction of the steps over which the learning rate rises linearly from 0; it then decays "
                "linearly to 0."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient-norm clipping."})
    pos_weight: float | str = field(default="auto", metadata={
        "help": "Weight of the relevant (1) tokens in the loss: 'auto' = irrelevant / relevant tokens of the "
                "training set (balances the classes), or a number (1 = no reweighting)."})
    eval_every: int = field(default=100, metadata={"help": "Evaluate (and maybe save best/) every this many "
                                                             "steps, and at the end."})
    save_every: int = field(default=25, metadata={
        "help": "Write last/ every this many steps; a killed run loses at most save_every - 1 steps "
                "(1: none)."})
    log_every: int = field(default=10, metadata={"help": "Log the training loss every this many steps."})
    eval_batch_size: int = field(default=64, metadata={"help": "Inputs per forward pass when evaluating."})
    seed: int = field(default=0, metadata={"help": "Seed of the head's initialization, dropout, data order and "
                                                    "the held-out split."})
    visible_line_breaks: bool = field(default=True, metadata={
        "help": "Give '\\n' its own token when the backbone's tokenizer drops line breaks (BERT-style encoders), "
                "so rubrics about lines and paragraphs can be learned."})
    visible_case: bool = field(default=True, metadata={
        "help": f"Put a '{CAPITAL_MARK}' token before every capital A-Z when the backbone's tokenizer lowercases "
                "(uncased encoders such as MiniLM), so rubrics about capital letters can be learned."})
    dropout: bool = field(default=True, metadata={
        "help": "Keep the backbone's dropout while training. Off, training on a CPU is about 1.5x faster (and a "
                "few epochs on thousands of pairs underfit rather than overfit)."})
    bf16: bool = field(default=False, metadata={
        "help": "Train under bfloat16 autocast (weights and optimizer stay float32): faster on CPUs with AMX and "
                "on recent GPUs. Evaluation runs as at RL time."})
    template: str = field(default=DEFAULT_TEMPLATE, metadata={
        "help": "Input template holding the rubric ({rubric}) and, for a verdict-conditioned model, the verdict "
                "({verdict}: PASS or FAIL); the response's tokens follow it."})
    verdict_input: bool = field(default=False, metadata={
        "help": f"Read the verdict too: the template becomes {VERDICT_TEMPLATE!r} (method.md §5; at RL time the "
                "verdict is known before relevance runs, and blame and credit flag different tokens)."})
    attention: str = field(default="backbone", metadata={
        "help": "'backbone': the backbone's own attention (causal for a decoder); 'bidirectional': every token "
                "sees the whole input, so a decoder backbone reads the whole response before scoring a token "
                "(count rubrics such as exact_bullets decide every token from the total)."})
    max_length: int = field(default=512, metadata={
        "help": "Longest model input; longer responses are cut into overlapping windows."})
    window_overlap: float = field(default=0.5, metadata={"help": "Fraction of a window shared with the next."})
    threshold: float = field(default=0.5, metadata={
        "help": "Relevance above which a token counts as relevant (metrics, heatmaps)."})

    def __post_init__(self):
        if self.pos_weight != "auto" and not (isinstance(self.pos_weight, (int, float))
                                              and not isinstance(self.pos_weight, bool) and self.pos_weight > 0):
            raise ValueError(f"pos_weight must be 'auto' or a number > 0, got {self.pos_weight!r}")
        if not 0 < self.eval_fraction < 1:
            raise ValueError(f"eval_fraction must be in (0, 1), got {self.eval_fraction}")
        for name in ("batch_size", "eval_every", "save_every", "log_every", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps is None and self.epochs <= 0:
            raise ValueError(f"epochs must be > 0, got {self.epochs}")
        check_attention(self.attention)
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")

    def model_config(self) -> RelevanceModelConfig:
        template = VERDICT_TEMPLATE if self.verdict_input else self.template
        return RelevanceModelConfig(template=template, max_length=self.max_length,
                                    window_overlap=self.window_overlap, threshold=self.threshold,
                                    attention=self.attention)


def load_training_config(path: str | Path, overrides: Sequence[str] = ()) -> RelevanceTrainingConfig:
    """Read a YAML training config and apply ``key=value`` overrides (values parsed as YAML)."""
    config = build_config(RelevanceTrainingConfig, read_config_tree(path, overrides), path, overrides)
    path = Path(path)
    if not config.train_file:
        raise ConfigError(f"{path}: train_file is required")
    config.train_file = str(path.parent / config.train_file)  # an absolute train_file stays as it is
    config.eval_file = str(path.parent / config.eval_file) if config.eval_file else None
    return config
