"""The training loop of the relevance model, plain torch (the package docstring has the whole picture)."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import torch
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from rubrics2tokens.relevance.labels import LabelledPair
from rubrics2tokens.relevance.metrics import evaluate_model, format_report
from rubrics2tokens.relevance.model import RelevanceModel
from rubrics2tokens.relevance.training.checkpoints import (METRICS_FILE, STATE_FILE, Progress, restore_last, save_best,
                                                           save_last)
from rubrics2tokens.relevance.training.config import RelevanceTrainingConfig
from rubrics2tokens.relevance.training.data import (IGNORE_INDEX, build_examples, collate, epoch_batches, load_pairs,
                                                    positive_weight)
from rubrics2tokens.relevance.training.starting_model import build_model
from rubrics2tokens.yaml_config import ConfigError


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
        logits = model.logits(batch["input_ids"].to(device), batch["attention_mask"].to(device))
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
