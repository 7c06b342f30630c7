"""What `rtt train` prints: one progress bar and one compact line per logged step, instead of transformers'
dict of ~45 quoted numbers per step; and the known-harmless library messages, silenced where they come from.

A line reads::

    step   3/10  reward 0.42  all-pass 0.25  entropy 1.23  length 54  truncated 0.12  step 12.3s  ETA 1m27s

(with ``overlong_penalty_tokens`` the reward is the sum of two parts, and the line says so:
``reward -0.23 = rubrics 0.31 + length penalty -0.54``), and a held-out evaluation adds::

    held-out @ step 3  all-pass 0.31  satisfaction 0.55  entropy 1.20  length 80  truncated 0.25

Every metric still goes to ``metrics.jsonl`` and TensorBoard (`JsonlMetrics`, TRL's reporters); ``quiet``
keeps the bar only, ``verbose`` adds the full record of each log.
"""

from __future__ import annotations

import logging
import time
import warnings

from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm
from transformers import TrainerCallback
from transformers.utils import logging as transformers_logging

from rubrics2tokens.trainer.heldout import heldout_name

VERBOSITIES = ("quiet", "normal", "verbose")

TRAIN_COLUMNS = (("reward", "reward", "{:.3f}"), ("rubrics/all_pass", "all-pass", "{:.2f}"),
                 ("entropy", "entropy", "{:.2f}"), ("completions/mean_length", "length", "{:.0f}"),
                 ("completions/clipped_ratio", "truncated", "{:.2f}"))
HELDOUT_COLUMNS = (("heldout/all_pass", "all-pass", "{:.2f}"), ("heldout/satisfaction", "satisfaction", "{:.2f}"),
                   ("heldout/entropy", "entropy", "{:.2f}"), ("heldout/mean_length", "length", "{:.0f}"),
                   ("heldout/truncated_frac", "truncated", "{:.2f}"))
"""(metric, label, format) of the columns of a step line and of a held-out line."""
REWARD_PARTS = (("rewards/rubrics/mean", "rubrics"), ("rewards/soft_overlong_punishment_reward/mean", "length penalty"))
"""TRL's per-function reward means (the rubric reward, the overlong penalty) -> their label in a step line."""


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _columns(logs: dict, columns) -> str:
    return "  ".join(f"{label} {form.format(logs[key])}" + _reward_parts(logs, key) for key, label, form in columns
                     if isinstance(logs.get(key), (int, float)))


def _reward_parts(logs: dict, key: str) -> str:
    """`` = rubrics 0.31 + length penalty -0.54`` after the reward when it has both parts (a negative reward is
    otherwise a puzzle), else nothing."""
    if key != "reward" or not all(isinstance(logs.get(part), (int, float)) for part, _ in REWARD_PARTS):
        return ""
    return " = " + " + ".join(f"{label} {logs[part]:.2f}" for part, label in REWARD_PARTS)


class RunProgress(TrainerCallback):
    """A single progress bar over the run's steps and, unless quiet, one line per log (rank 0 only).
    Replaces transformers' `ProgressCallback` / `PrinterCallback` in `rubrics2tokens.builder`."""

    def __init__(self, verbosity: str = "normal"):
        if verbosity not in VERBOSITIES:
            raise ValueError(f"verbosity must be one of {', '.join(VERBOSITIES)}, got {verbosity!r}")
        self.verbosity = verbosity
        self.bar = None
        self.redirect = None
        self.started_at = self.step_started_at = 0.0
        self.first_step = 0
        self.last_step_seconds: float | None = None
        self.evaluated_batches = 0

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.first_step = state.global_step  # a resumed run starts past 0
        # log records go above the bar, not into it; checkpoint saves draw no bars of their own
        self.redirect = logging_redirect_tqdm()
        self.redirect.__enter__()
        if self.verbosity != "verbose":
            transformers_logging.disable_progress_bar()
        self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="training", unit="step",
                        dynamic_ncols=True)
        self.started_at = self.step_started_at = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is None:
            return
        now = time.monotonic()
        self.last_step_seconds, self.step_started_at = now - self.step_started_at, now
        self.bar.update(state.global_step - self.bar.n)

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        if self.bar is not None:  # a held-out evaluation can take minutes: say so on the bar
            self.evaluated_batches += 1
            total = f"/{len(eval_dataloader)}" if eval_dataloader is not None else ""
            self.bar.set_postfix_str(f"held-out batch {self.evaluated_batches}{total}")

    def on_evaluate(self, args, state, control, **kwargs):
        self.evaluated_batches = 0
        if self.bar is not None:
            self.bar.set_postfix_str("")
        self.step_started_at = time.monotonic()  # an evaluation is no part of the next step's time

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or self.verbosity == "quiet":
            return
        logs = {heldout_name(key): value for key, value in logs.items()}
        if self.verbosity == "verbose":
            self._write(" ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
                                 for key, value in logs.items()))
        if any(key.startswith("heldout/") for key in logs):
            self._write(f"held-out @ step {state.global_step}  {_columns(logs, HELDOUT_COLUMNS)}")
        elif "reward" in logs:
            self._write(self._step_line(state, logs))

    def _step_line(self, state, logs: dict) -> str:
        width = len(str(state.max_steps))
        parts = [f"step {state.global_step:>{width}}/{state.max_steps}", _columns(logs, TRAIN_COLUMNS)]
        if self.last_step_seconds is not None:
            parts.append(f"step {self.last_step_seconds:.1f}s")
        done = state.global_step - self.first_step
        if done > 0 and state.max_steps > state.global_step:
            per_step = (time.monotonic() - self.started_at) / done  # evaluations included: they recur
            parts.append(f"ETA {duration(per_step * (state.max_steps - state.global_step))}")
        return "  ".join(part for part in parts if part)

    def _write(self, line: str) -> None:
        (self.bar.write if self.bar is not None else print)(line)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            self.redirect.__exit__(None, None, None)
            transformers_logging.enable_progress_bar()


# ---------------------------------------------------------------- known-harmless library messages


class _DropMessages(logging.Filter):
    def __init__(self, should_drop):
        super().__init__()
        self.should_drop = should_drop

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.should_drop(record.getMessage())


def silence_known_harmless_messages(model) -> None:
    """Filters on the library warnings and log messages that read like failures but are not (idempotent)."""
    # TRL 1.16 calls transformers' deprecated gradient_checkpointing names around every generation (three
    # FutureWarnings per step, shown again whenever a warnings filter changes); nothing a user can change.
    warnings.filterwarnings("ignore", message=r"`(is_)?gradient_checkpointing(_enable|_disable)?` is deprecated",
                            category=FutureWarning)
    # TRL prints a whole row's kwargs (prompt, rubrics, completion) each time every reward of a completion is
    # None. RTT's reward is None when all of a response's verdicts are unknown (a judge that did not answer,
    # an unverifiable rubric): expected, and counted per step in rubrics/known_frac and scoring/unverifiable.
    _add_filter("trl.trainer.grpo_trainer",  # accelerate's logger may prefix "[RANK n] "
                lambda message: "All reward functions returned None for the following kwargs" in message)
    # On resume, transformers loads the checkpoint's state dict, which holds no lm_head.weight when the output
    # layer is tied to the input embeddings (it is saved once); the weights are tied again right after loading.
    if getattr(model.config, "tie_word_embeddings", False):
        _add_filter("transformers.trainer",
                    lambda message: message == "There were missing keys in the checkpoint model loaded: "
                                               "['lm_head.weight'].")


def _add_filter(logger_name: str, should_drop) -> None:
    logger = logging.getLogger(logger_name)
    if not any(isinstance(existing, _DropMessages) for existing in logger.filters):
        logger.addFilter(_DropMessages(should_drop))
