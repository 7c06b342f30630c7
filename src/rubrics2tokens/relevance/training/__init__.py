"""Training the relevance model: labelled pairs -> token labels -> binary cross-entropy -> best checkpoint.

The pieces: the configuration (`config`), pairs -> labelled model inputs and batches (`data`), the
starting model (`starting_model`), what is saved (`checkpoints`) and the loop itself (`loop`), plain torch:

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

from rubrics2tokens.relevance.training.checkpoints import METRICS_FILE, STATE_FILE, Progress
from rubrics2tokens.relevance.training.config import CAPITAL_MARK, RelevanceTrainingConfig, load_training_config
from rubrics2tokens.relevance.training.data import IGNORE_INDEX, build_examples, collate, load_pairs, split_by_prompt
from rubrics2tokens.relevance.training.loop import token_loss, train_relevance_model, train_step
from rubrics2tokens.relevance.training.starting_model import build_model

__all__ = ["CAPITAL_MARK", "IGNORE_INDEX", "METRICS_FILE", "STATE_FILE", "Progress", "RelevanceTrainingConfig",
           "build_examples", "build_model", "collate", "load_pairs", "load_training_config", "split_by_prompt",
           "token_loss", "train_relevance_model", "train_step"]
