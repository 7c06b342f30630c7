import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402

from tiny_model import build_tiny_model, build_yes_judge  # noqa: E402

@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def yes_judge_dir(tmp_path_factory) -> Path:
    """A tiny local judge that answers every question YES (`build_yes_judge`)."""
    return build_yes_judge(tmp_path_factory.mktemp("yes-judge"))


@pytest.fixture(scope="session")
def tiny_relevance_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """An untrained relevance model on the tiny backbone, for runs with relevance_source 'model'."""
    from rubrics2tokens.relevance.model import RelevanceModel

    return RelevanceModel.from_backbone(str(tiny_model_dir)).save(tmp_path_factory.mktemp("tiny-relevance"))
