"""The model card of a finished run: what was trained from what, how, and what the held-out evaluation says.

TRL writes its own card (README.md) into the run folder at every checkpoint; it knows neither the base model of an
embedded policy nor the method ("fine-tuned version of [None]", "trained with GRPO"). `rtt train` replaces it at
the end of the run, in the run folder and in ``final/`` (the folder a user uploads or loads).
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import yaml

from rubrics2tokens.cli.summary import heldout_lines
from rubrics2tokens.models.loading import EMBEDDED_HUB_IDS

CARD_FILE = "README.md"


def method_line(training: dict) -> str:
    """One sentence on the method, from the run config's ``training`` section (defaults as in `RTTConfig`)."""
    reward = training.get("reward_aggregation", "aon")
    reward_name = {"aon": "all-or-nothing", "csr": "constraint-satisfaction-rate"}.get(reward, reward)
    penalty = training.get("overlong_penalty_tokens", 0)
    penalty_text = (f", minus an overlong penalty over the last {penalty} of {training.get('max_completion_length')} "
                    "tokens" if penalty else "")
    if training.get("relevance_source", "oracle") == "none":
        return f"plain GRPO on the {reward_name} rubric reward{penalty_text}"
    return (f"RTT-GRPO: GRPO on the {reward_name} rubric reward{penalty_text}, plus token-level credit from relevance "
            f"source '{training.get('relevance_source', 'oracle')}', partition "
            f"'{training.get('token_partition', 'intra_sample')}', combined by "
            f"'{training.get('token_advantage_method', 'add')}' with coefficient "
            f"{training.get('token_advantage_coef', 0.5)}")


def model_card(output_dir: Path, config_tree: dict) -> str:
    """The card's Markdown: a YAML header for the Hub, the method, the held-out table and the full config."""
    base = config_tree["model"]["name_or_path"]
    training = config_tree["training"]
    # the Hub's base_model field takes a Hub id: an embedded model is named by the one it copies
    header = yaml.safe_dump({"base_model": EMBEDDED_HUB_IDS.get(base, base), "library_name": "transformers",
                             "tags": ["rubrics2tokens", "rtt", "grpo", "instruction-following"]}, sort_keys=False)
    held_out = "\n".join(heldout_lines(output_dir))
    return f"""---
{header}---

# {output_dir.name}

`{base}` trained with {method_line(training)}, for {training.get("max_steps")} steps on
`{config_tree["data"]["source"]}` prompts (seed {training.get("seed", 42)}), by rubrics2tokens
{version("rubrics2tokens")} on TRL {version("trl")}.

## Held-out evaluation

Prompts the policy never trained on, before the first step and after the last (`heldout/step_<N>.jsonl` in the run
folder has every response with its verdicts and token advantages; `rtt report` draws them).

```text
{held_out}
```

## Use

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

model = AutoModelForCausalLM.from_pretrained("{output_dir / 'final'}")
tokenizer = AutoTokenizer.from_pretrained("{output_dir / 'final'}")
```

## Run config

```yaml
{yaml.safe_dump(config_tree, sort_keys=False).rstrip()}
```
"""


def write_model_card(output_dir: Path, final_dir: Path, config_tree: dict) -> None:
    """Write the card into the run folder (over TRL's) and into ``final_dir``."""
    card = model_card(output_dir, config_tree)
    for folder in (output_dir, final_dir):
        (folder / CARD_FILE).write_text(card, encoding="utf-8")
