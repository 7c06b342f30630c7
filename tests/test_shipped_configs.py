"""Every config shipped under configs/ parses as shipped and builds what it configures with the policy swapped
for the tiny local model (tests/tiny_model.py); the paper configs say what method.md §7 says.

A config's kind is read from its keys: a run config (`rtt train`), a study (`rtt study`: every variant's run
config is built) or a relevance-model training config (`rtt relevance train`). A file of any other kind fails
here until this test learns it. configs/accelerate/ holds accelerate's launch files: test_accelerate_launch.py.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from rubrics2tokens.cli.train import build_trainer
from rubrics2tokens.config import RunConfig, load_run_config, read_config_tree
from rubrics2tokens.data.hir import HUB_DATASET
from rubrics2tokens.relevance.sources import ModelRelevance
from rubrics2tokens.relevance.training import build_model, load_training_config
from rubrics2tokens.study.spec import load_study, write_run_configs
from rubrics2tokens.trainer import RTTGRPOTrainer
from tests_paths import REPO

CONFIGS = REPO / "configs"
LAUNCH_FILES = CONFIGS / "accelerate"
RUN_SECTIONS = {section.name for section in dataclasses.fields(RunConfig)}
SHIPPED = sorted(path for path in CONFIGS.rglob("*.yaml") if LAUNCH_FILES not in path.parents)

PAPER_POLICIES = {  # config name -> Hub id (method.md §7)
    "qwen3-4b-instruct-2507": "Qwen/Qwen3-4B-Instruct-2507",
    "qwen2.5-7b-instruct": "Qwen/Qwen2.5-7B-Instruct",
    "llama-3.2-3b-instruct": "meta-llama/Llama-3.2-3B-Instruct",
}
PAPER_SETTING = {  # method.md §7, plus the runtime choices of the issue (bf16, checkpointing, vLLM rollouts)
    "learning_rate": 1e-6, "max_steps": 500, "num_generations": 8, "max_completion_length": 4096,
    "temperature": 0.99, "top_p": 0.99, "top_k": 100, "beta": 0.0, "epsilon": 0.2, "epsilon_high": 0.27,
    "num_iterations": 1, "token_advantage_method": "add", "token_advantage_coef": 0.5,
    "token_partition": "intra_sample", "reward_aggregation": "aon", "relevance_source": "model",
    "bf16": True, "activation_checkpointing": True, "use_vllm": True,
}
PAPER_GPUS, PAPER_COMPLETIONS = 8, 64 * 8  # the configs' batch sizes are written for 8 GPUs
POLICY_SPECIFIC = {("model", "name_or_path"), ("training", "output_dir"), ("training", "relevance_model"),
                   ("scoring", "judge", "cache_path")}


def config_kind(path: Path) -> str:
    tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if "variants" in tree:
        return "study"
    if "backbone" in tree or "train_file" in tree:
        return "relevance"
    if set(tree) <= RUN_SECTIONS:
        return "run"
    raise AssertionError(f"{path}: a config of a kind this test does not know (keys {sorted(tree)}); teach it")


@pytest.fixture(scope="module")
def local_hub_dataset(tmp_path_factory) -> Path:
    """The HIR sample as a dataset folder, loaded by `datasets` exactly as a Hub id is (data.source 'hub')."""
    folder = tmp_path_factory.mktemp("hir-hub")
    (folder / "train.jsonl").write_text((REPO / "data" / "samples" / "hir_sample.jsonl").read_text(encoding="utf-8"))
    return folder


def build_run(path: Path, tmp_path: Path, tiny: Path, relevance: Path, hub: Path) -> RTTGRPOTrainer:
    """The trainer of a run config, policy swapped for the tiny model. vLLM rollouts (not installed without a
    GPU) become TRL's generate path, a trained relevance model the tiny one, the Hub dataset the local sample."""
    shipped = load_run_config(path)  # as shipped: every key and value checked, vLLM settings included
    overrides = [f"model.name_or_path={tiny}", f"training.output_dir={tmp_path / 'run'}", "training.use_vllm=false"]
    if shipped.training.relevance_source == "model":
        overrides.append(f"training.relevance_model={relevance}")
    if shipped.data.source == "hub":
        overrides.append(f"data.path={hub}")
    trainer = build_trainer(load_run_config(path, overrides))
    for key in ("token_partition", "reward_aggregation", "relevance_source", "num_generations",
                "max_completion_length", "learning_rate", "beta"):
        assert getattr(trainer.args, key) == getattr(shipped.training, key), (path, key)
    assert len(trainer.train_dataset) > 0
    if shipped.training.relevance_source == "model":
        assert isinstance(trainer.relevance, ModelRelevance)
    return trainer


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: str(path.relative_to(CONFIGS)))
def test_shipped_config_builds_with_a_tiny_policy(path, tmp_path, tiny_model_dir, tiny_relevance_dir,
                                                   local_hub_dataset):
    kind = config_kind(path)
    if kind == "run":
        build_run(path, tmp_path, tiny_model_dir, tiny_relevance_dir, local_hub_dataset)
    elif kind == "study":
        study = load_study(path, output_dir=tmp_path / "study")
        write_run_configs(study, started=set())
        first_seed_of_each_variant = {run.variant: run for run in reversed(study.runs)}
        for run in first_seed_of_each_variant.values():
            build_run(run.config_path, tmp_path / run.variant, tiny_model_dir, tiny_relevance_dir,
                      local_hub_dataset)
    else:
        load_training_config(path)  # as shipped
        model = build_model(load_training_config(path, [f"backbone={tiny_model_dir}"]))
        response_ids, _ = model.tokenize_response("Hello, World! The end.")
        inputs = [pair.input_ids for pair in model.encode_pair("The response contains no commas.", response_ids)]
        probabilities = model.forward_probabilities(inputs)
        assert probabilities.shape[0] == len(inputs) and ((probabilities >= 0) & (probabilities <= 1)).all()


def test_the_paper_configs_follow_method_md():
    trees = {}
    for name, hub_id in PAPER_POLICIES.items():
        path = CONFIGS / "paper" / f"{name}.yaml"
        config = load_run_config(path)
        assert config.model.name_or_path == hub_id
        assert (config.data.source, config.data.path) == ("hub", HUB_DATASET)
        assert config.scoring.mode == "hybrid" and config.scoring.allow_dataset_code
        args = config.training
        for key, value in PAPER_SETTING.items():
            assert getattr(args, key) == value, (name, key)
        assert args.per_device_train_batch_size * PAPER_GPUS * args.gradient_accumulation_steps == PAPER_COMPLETIONS
        assert args.vllm_max_model_length >= args.max_completion_length

        relevance = load_training_config(CONFIGS / "paper" / f"relevance-{name}.yaml")
        assert relevance.backbone == hub_id, "the relevance model is trained on the policy's own backbone"
        assert args.relevance_model == f"{relevance.output_dir}/best", "the run reads what relevance training writes"
        trees[name] = read_config_tree(path)

    def shared_settings(tree: dict) -> str:
        for keys in POLICY_SPECIFIC:
            node = tree
            for key in keys[:-1]:
                node = node[key]
            node.pop(keys[-1])
        return json.dumps(tree, sort_keys=True)

    settings = {name: shared_settings(tree) for name, tree in trees.items()}
    assert len(set(settings.values())) == 1, "the paper configs differ beyond the policy and its paths"
