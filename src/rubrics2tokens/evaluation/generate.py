"""Sample responses to benchmark prompts into a resumable JSONL file, one ``{key, prompt, sample, response}`` a line.

Each prompt goes through the model's chat template as a user turn (or as its own conversation, when the
benchmark gives one) and is answered `samples` times. Each response is appended and synced to disk as soon
as it is done (the ``static`` backend tells each sequence's end; the others return a batch at once), so a
killed run loses only the responses still being decoded: a rerun keeps every (key, sample) pair already in
the file and generates only the missing ones. The generation settings are kept next to the file
(`data.kept_settings`), and a rerun with other settings is refused rather than mixing two evaluations.

Backends, all with the same sampling settings:
- ``static``: `StaticCacheDecoder` (the default; the fastest on small models, transformers-exact sampling; its batch
  never idles: a finished sequence's slot takes the next waiting prompt);
- ``transformers``: ``model.generate``;
- ``vllm``: vLLM's offline ``LLM.generate`` (needs ``pip install -e ".[vllm]"``).

Temperature 0 means greedy decoding (the argmax token at every step; top-p and top-k are then moot), as in
vLLM. Sampling is seeded once per run: the same command with the same seed and batch size reproduces its
responses. A resumed run draws from a fresh stream, so its new responses differ from those an uninterrupted
run would have sampled (they follow the same distribution).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from rubrics2tokens.data.kept_settings import keep_settings
from rubrics2tokens.data.schema import DataError, append_jsonl, read_appended_jsonl
from rubrics2tokens.generation import SamplingParams, StaticCacheDecoder
from rubrics2tokens.generation.rollout import ROLLOUT_DTYPES, resolve_rollout_dtype
from rubrics2tokens.generation.stopping import stop_token_ids
from rubrics2tokens.models.loading import load_policy, load_tokenizer, resolve_model_path

logger = logging.getLogger(__name__)

BACKENDS = ("static", "transformers", "vllm")
VLLM_INSTALL_HINT = 'pip install -e ".[vllm]"'

GenerateAll = Callable[[list[list[int]], Callable[[int, str], None]], None]
"""A backend: ``generate_all(prompt_ids, on_response)`` answers every prompt, batching as it can, and calls
``on_response(index, text)`` once per prompt with its response (special tokens removed), as soon as that
response is done when the backend can tell (``static``), else when its batch is."""

SETTINGS_COMPARED = ("model", "temperature", "top_p", "top_k", "max_new_tokens", "dtype")
"""Settings that change what a response is: a rerun into the same file must use the same ones."""

DTYPES = ROLLOUT_DTYPES
"""The policy's precision while generating, chosen as for rollouts: ``auto`` is bfloat16 on a CUDA GPU or a CPU
that computes it natively (AVX512-BF16, AMX), else float32. Files written before this choice existed were
float32 on a CPU."""


class ChatPrompt(Protocol):
    """What generation needs of a prompt (`BenchmarkPrompt` and `AdvancedIFPrompt` have it): its key, its last
    user turn, and its conversation when the benchmark gives one (``None``: the user turn alone)."""

    @property
    def key(self) -> str: ...

    @property
    def prompt(self) -> str: ...

    @property
    def messages(self) -> tuple[dict[str, str], ...] | None: ...


class MissingBackendError(ImportError):
    """The chosen backend's package is not installed."""


def generate_responses(benchmark_prompts: Sequence[ChatPrompt], model_name_or_path: str,
                       out_file: str | Path, samples: int = 5, temperature: float = 0.7, top_p: float = 0.8,
                       top_k: int = 20, max_new_tokens: int = 2048, batch_size: int = 32,
                       backend: str = "static", seed: int = 0, dtype: str = "auto") -> int:
    """Append `samples` responses per prompt to `out_file`, skipping the (key, sample) pairs already there.

    Defaults are the RTT paper's evaluation setting (temperature 0.7, top-p 0.8, top-k 20, 5 samples);
    `batch_size` counts sequences (prompt x sample) decoded together; ``dtype`` is one of `DTYPES` (the
    transformers and static backends; vLLM chooses its own). The settings are kept next to ``out_file``
    (``responses.settings.json``); a rerun with other settings is a `SettingsMismatch`. Returns how many
    responses were generated.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {DTYPES}")
    if samples < 1 or temperature < 0 or top_k < 0 or not 0 < top_p <= 1 or max_new_tokens < 1 or batch_size < 1:
        raise ValueError("need samples >= 1, temperature >= 0, top_k >= 0, 0 < top_p <= 1, max_new_tokens >= 1 "
                         "and batch_size >= 1")
    out_file = Path(out_file)
    settings = {"model": model_name_or_path, "temperature": temperature, "top_p": top_p, "top_k": top_k,
                "max_new_tokens": max_new_tokens, "samples": samples, "seed": seed, "backend": backend,
                "dtype": resolve_dtype(dtype)}
    keep_settings(out_file, settings, SETTINGS_COMPARED, defaults={"dtype": "float32"})
    done = read_completed_pairs(out_file)
    pending = [(item, sample) for item in benchmark_prompts for sample in range(samples)
               if (item.key, sample) not in done]
    logger.info("%s: %d responses already there, %d to generate", out_file, len(done), len(pending))
    if not pending:
        return 0

    params = SamplingParams(do_sample=False) if temperature == 0 else SamplingParams(
        temperature=temperature, top_p=top_p, top_k=top_k)
    tokenizer = load_tokenizer(model_name_or_path)
    prompt_ids = {item.key: chat_prompt_ids(tokenizer, item) for item, _ in pending}
    generate_all = _BACKEND_FACTORIES[backend](model_name_or_path, params, max_new_tokens, seed, batch_size,
                                               settings["dtype"])
    _generate_into(out_file, pending, prompt_ids, generate_all)
    return len(pending)


def resolve_dtype(choice: str) -> str:
    """The precision ``choice`` (one of `DTYPES`) means on this machine."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return str(resolve_rollout_dtype(choice, torch.float32, device)).removeprefix("torch.")


def _generate_into(out_file: Path, pending: list[tuple[ChatPrompt, int]], prompt_ids: dict[str, list[int]],
                   generate_all: GenerateAll) -> None:
    """Answer the pending (prompt, sample) pairs, appending each response as soon as the backend returns it.
    Longest prompts first: a batch of similar lengths pads less, and the short ones fill the last slots."""
    pending = sorted(pending, key=lambda pair: -len(prompt_ids[pair[0].key]))
    unwritten = Counter(item.key for item, _ in pending)  # a prompt is done when its last pending sample is written
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with open(out_file, "a", encoding="utf-8") as out, \
            tqdm(total=len(unwritten), desc="generating", unit="prompt") as progress:

        def write(index: int, response: str) -> None:
            item, sample = pending[index]
            append_jsonl(out, [{"key": item.key, "prompt": item.prompt, "sample": sample, "response": response}])
            unwritten[item.key] -= 1
            progress.update(unwritten[item.key] == 0)

        generate_all([prompt_ids[item.key] for item, _ in pending], write)


def read_completed_pairs(out_file: Path) -> set[tuple[str, int]]:
    """The (key, sample) pairs already in a responses file, after dropping a line cut short by a kill."""
    pairs = set()
    for number, row in read_appended_jsonl(out_file):
        if "key" not in row or not isinstance(row.get("sample"), int):
            raise DataError(out_file, number, "sample", "each row needs a 'key' and an integer 'sample'")
        pairs.add((str(row["key"]), row["sample"]))
    return pairs


def chat_prompt_ids(tokenizer: Any, item: ChatPrompt) -> list[int]:
    """The prompt's token ids under the chat template, ending with the assistant turn's opening."""
    # a benchmark with conversations (MulDimIF, AdvancedIF: system prompts, earlier turns) gives them as they are;
    # the others give one user turn
    messages = item.messages or [{"role": "user", "content": item.prompt}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # the template writes any BOS itself; the tokenizer must not add a second one
    return tokenizer(text, add_special_tokens=False).input_ids


def _load_model(model_name_or_path: str, dtype: str) -> tuple[Any, Any]:
    """The policy in ``dtype``, on the GPU when there is one."""
    model, tokenizer = load_policy(model_name_or_path, dtype=dtype)
    if torch.cuda.is_available():
        model.to("cuda")
    return model.eval(), tokenizer


def _static_backend(model_name_or_path: str, params: SamplingParams, max_new_tokens: int, seed: int,
                    batch_size: int, dtype: str) -> GenerateAll:
    model, tokenizer = _load_model(model_name_or_path, dtype)
    decoder = StaticCacheDecoder(model, tokenizer.pad_token_id, stop_token_ids(tokenizer, model.generation_config),
                                 batch_size)
    generator = torch.Generator(device=model.device).manual_seed(seed)

    def generate_all(prompt_ids: list[list[int]], on_response: Callable[[int, str], None]) -> None:
        decoder.decode(prompt_ids, max_new_tokens, params, generator, on_finished=lambda index, ids: on_response(
            index, tokenizer.decode(ids, skip_special_tokens=True)))

    return generate_all


def _transformers_backend(model_name_or_path: str, params: SamplingParams, max_new_tokens: int, seed: int,
                          batch_size: int, dtype: str) -> GenerateAll:
    model, tokenizer = _load_model(model_name_or_path, dtype)
    settings: dict[str, Any] = {"do_sample": params.do_sample, "max_new_tokens": max_new_tokens,
                                "pad_token_id": tokenizer.pad_token_id,
                                "eos_token_id": stop_token_ids(tokenizer, model.generation_config)}
    if params.do_sample:
        settings.update(temperature=params.temperature, top_p=params.top_p, top_k=params.top_k)
    torch.manual_seed(seed)  # generate draws from the global generator; it takes no generator argument

    def generate_batch(prompt_ids: list[list[int]]) -> list[str]:
        batch = tokenizer.pad({"input_ids": prompt_ids}, padding_side="left", return_tensors="pt").to(model.device)
        output = model.generate(**batch, **settings)
        return tokenizer.batch_decode(output[:, batch.input_ids.shape[1]:], skip_special_tokens=True)

    return _in_batches(generate_batch, batch_size)


def _vllm_backend(model_name_or_path: str, params: SamplingParams, max_new_tokens: int, seed: int,
                  batch_size: int, dtype: str) -> GenerateAll:
    try:
        import vllm
    except ImportError:
        raise MissingBackendError(f"the vllm backend needs vLLM, which is not installed: {VLLM_INSTALL_HINT}") \
            from None
    # One request per (prompt, sample), seeded by the engine: a per-request seed would make the repeated
    # requests of a prompt sample identical responses.
    llm = vllm.LLM(model=resolve_model_path(model_name_or_path), seed=seed)
    temperature = params.temperature if params.do_sample else 0.0  # vLLM's greedy
    sampling = vllm.SamplingParams(n=1, max_tokens=max_new_tokens, temperature=temperature, top_p=params.top_p,
                                   top_k=params.top_k or -1)  # -1: vLLM's "no top-k" in every version

    def generate_batch(prompt_ids: list[list[int]]) -> list[str]:
        outputs = llm.generate([{"prompt_token_ids": ids} for ids in prompt_ids], sampling, use_tqdm=False)
        return [output.outputs[0].text for output in outputs]

    return _in_batches(generate_batch, batch_size)


def _in_batches(generate_batch: Callable[[list[list[int]]], list[str]], batch_size: int) -> GenerateAll:
    """A backend from one that answers a batch at once: ``batch_size`` prompts a call, each batch's responses
    handed over when it returns (so a kill loses at most one batch)."""

    def generate_all(prompt_ids: list[list[int]], on_response: Callable[[int, str], None]) -> None:
        for start in range(0, len(prompt_ids), batch_size):
            for index, text in enumerate(generate_batch(prompt_ids[start:start + batch_size])):
                on_response(start + index, text)

    return generate_all


_BACKEND_FACTORIES: dict[str, Callable[[str, SamplingParams, int, int, int, str], GenerateAll]] = {
    "static": _static_backend, "transformers": _transformers_backend, "vllm": _vllm_backend}
