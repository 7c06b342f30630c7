"""`rtt eval run` with the tiny local model on the first IFEval prompts: generation, scoring, resuming, seeding."""

import importlib.util
import json
import logging

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rubrics2tokens.cli.main import main
from rubrics2tokens.data.kept_settings import SettingsMismatch
from rubrics2tokens.evaluation.benchmarks import load_benchmark
from rubrics2tokens.evaluation.generate import generate_responses
from tests_paths import IFEVAL_DATA

QUICK = {"max_new_tokens": 8, "batch_size": 4}


@pytest.fixture(scope="module")
def prompts():
    return load_benchmark("ifeval", IFEVAL_DATA)[:3]


@pytest.fixture(scope="module")
def untied_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model with an output layer of its own. With tied embeddings its greedy choice is the input
    token itself (a newline forever after the chat template), which would make any two decoders agree."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model.config.tie_word_embeddings = False
    model.lm_head.weight = torch.nn.Parameter(torch.randn(model.lm_head.weight.shape,
                                                          generator=torch.Generator().manual_seed(0)))
    directory = tmp_path_factory.mktemp("untied-model")
    model.save_pretrained(directory)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(directory)
    return directory


def _read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _pairs(rows):
    return [(row["key"], row["sample"]) for row in rows]


def test_eval_run_generates_scores_and_summarizes(tmp_path, tiny_model_dir, prompts, capsys):
    main(["eval", "run", "--benchmark", "ifeval", "--model", str(tiny_model_dir), "--out", str(tmp_path),
          "--data", str(IFEVAL_DATA), "--limit", "3", "--samples", "2", "--max-new-tokens", "8"])

    responses = sorted(_read_jsonl(tmp_path / "responses.jsonl"), key=lambda row: (row["key"], row["sample"]))
    assert _pairs(responses) == sorted((item.key, sample) for item in prompts for sample in (0, 1))
    assert {row["key"]: row["prompt"] for row in responses} == {item.key: item.prompt for item in prompts}
    assert all(isinstance(row["response"], str) for row in responses)
    assert len(_read_jsonl(tmp_path / "verdicts.jsonl")) == 6
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["num_prompts"], summary["num_responses"]) == (3, 6)
    assert "rubric-level accuracy (RTT paper)" in capsys.readouterr().out


def test_a_rerun_generates_only_the_missing_pairs_and_keeps_the_others(tmp_path, tiny_model_dir, prompts,
                                                                        caplog):
    first, second = prompts[0].key, prompts[1].key
    kept = [{"key": first, "prompt": prompts[0].prompt, "sample": 0, "response": "kept zero"},
            {"key": second, "prompt": prompts[1].prompt, "sample": 1, "response": "kept one"}]
    out_file = tmp_path / "responses.jsonl"
    generate_responses([], str(tiny_model_dir), out_file, samples=2, **QUICK)  # the settings a first run keeps
    killed_mid_row = '{"key": "%s", "prompt": "Write' % first
    out_file.write_text("".join(json.dumps(row) + "\n" for row in kept) + killed_mid_row, encoding="utf-8")

    with caplog.at_level(logging.WARNING):
        generated = generate_responses(prompts[:2], str(tiny_model_dir), out_file, samples=2, **QUICK)

    assert "truncated last line" in caplog.text
    rows = _read_jsonl(out_file)
    assert generated == 2
    assert rows[:2] == kept
    assert sorted(_pairs(rows[2:])) == sorted([(first, 1), (second, 0)])
    assert generate_responses(prompts[:2], str(tiny_model_dir), out_file, samples=2, **QUICK) == 0


def test_the_same_seed_gives_the_same_responses(tmp_path, tiny_model_dir, prompts):
    def sample(seed, name):
        generate_responses(prompts, str(tiny_model_dir), tmp_path / name, samples=2, seed=seed, **QUICK)
        return [row["response"] for row in _read_jsonl(tmp_path / name)]

    assert sample(7, "a.jsonl") == sample(7, "b.jsonl") != sample(8, "c.jsonl")


def test_static_and_transformers_backends_decode_greedily_alike_at_temperature_zero(tmp_path, untied_model_dir,
                                                                                    prompts):
    def greedy(backend):
        out_file = tmp_path / f"{backend}.jsonl"
        generate_responses(prompts, str(untied_model_dir), out_file, samples=1, temperature=0, backend=backend,
                           **QUICK)
        return {(row["key"], row["sample"]): row["response"] for row in _read_jsonl(out_file)}

    static = greedy("static")
    assert static == greedy("transformers")
    assert len(set(static.values())) > 1, "every prompt got the same answer: a degenerate model proves nothing"


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed")
def test_the_vllm_backend_without_vllm_says_how_to_install_it(tmp_path, tiny_model_dir):
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "run", "--benchmark", "ifeval", "--model", str(tiny_model_dir), "--out", str(tmp_path),
              "--data", str(IFEVAL_DATA), "--limit", "1", "--backend", "vllm"])
    assert 'pip install -e ".[vllm]"' in str(exit_info.value)


def test_a_rerun_with_other_generation_settings_is_refused(tmp_path, tiny_model_dir, capsys):
    command = ["eval", "run", "--benchmark", "ifeval", "--model", str(tiny_model_dir), "--out", str(tmp_path),
               "--data", str(IFEVAL_DATA), "--limit", "2", "--max-new-tokens", "8"]
    main(command)
    capsys.readouterr()
    kept = (tmp_path / "responses.jsonl").read_text()
    assert json.loads((tmp_path / "responses.settings.json").read_text())["max_new_tokens"] == 8
    with pytest.raises(SystemExit) as exit_info:
        main([*command[:-1], "9"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error == (f"rtt: error: {tmp_path / 'responses.jsonl'} was written with max_new_tokens=8 "
                     f"({tmp_path / 'responses.settings.json'}); this run asks for max_new_tokens=9. Rerun with "
                     "those settings to continue it, or choose another --out")
    assert (tmp_path / "responses.jsonl").read_text() == kept


def test_a_file_from_before_the_dtype_option_continues_only_in_float32(tmp_path, tiny_model_dir):
    out_file = tmp_path / "responses.jsonl"
    generate_responses([], str(tiny_model_dir), out_file, samples=1, dtype="float32", **QUICK)
    settings = json.loads((tmp_path / "responses.settings.json").read_text())
    del settings["dtype"]  # as written before the option existed (float32 then)
    (tmp_path / "responses.settings.json").write_text(json.dumps(settings))
    with pytest.raises(SettingsMismatch, match="dtype='float32'.*this run asks for dtype='bfloat16'"):
        generate_responses([], str(tiny_model_dir), out_file, samples=1, dtype="bfloat16", **QUICK)
    generate_responses([], str(tiny_model_dir), out_file, samples=1, dtype="float32", **QUICK)


def test_each_response_is_written_as_it_completes(tmp_path, untied_model_dir, prompts):
    """The static decoder reports each completion when it ends: shorter ones first, before the batch is done."""
    from rubrics2tokens.generation import SamplingParams, StaticCacheDecoder
    from rubrics2tokens.evaluation.generate import chat_prompt_ids

    model = AutoModelForCausalLM.from_pretrained(untied_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(untied_model_dir)
    prompt_ids = [chat_prompt_ids(tokenizer, item) for item in prompts * 2]

    def decode(eos, on_finished=None):
        decoder = StaticCacheDecoder(model, tokenizer.pad_token_id, eos)
        return decoder.decode(prompt_ids, 24, SamplingParams(temperature=1.0), torch.Generator().manual_seed(0),
                              on_finished=on_finished)

    # the same draws again, now ending where the first row drew its 4th token: that row ends early
    decoded_once = decode([])
    reported = []
    decoded = decode([decoded_once.completion_ids[0][3]], lambda index, ids: reported.append((index, ids)))
    assert sorted(reported) == sorted(enumerate(decoded.completion_ids))
    lengths = [len(ids) for _, ids in reported]
    assert lengths == sorted(lengths) and lengths[0] < lengths[-1], "reported as they end, not all at the end"


def test_eval_run_help_shows_cpu_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--samples SAMPLES responses per prompt (default: 1)" in text
    assert "--max-new-tokens MAX_NEW_TOKENS longest response, in tokens (default: 512)" in text


@pytest.mark.parametrize("name, prompts, instructions", [("ifeval", 541, 834), ("ifbench", 294, 335),
                                                              ("muldimif", 1200, 4180)])
def test_every_benchmark_is_shipped_so_no_data_is_needed_offline(name, prompts, instructions, tmp_path,
                                                                 monkeypatch):
    """Without --data the package's own copy of the test set is read: no Hub, no internet."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    items = load_benchmark(name)
    assert (len(items), sum(len(item.instruction_ids) for item in items)) == (prompts, instructions)
    responses = tmp_path / "responses.jsonl"
    responses.write_text(json.dumps({"key": items[0].key, "response": "A short answer."}) + "\n")
    main(["eval", "score", "--benchmark", name, "--responses", str(responses), "--out", str(tmp_path / "out")])
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["num_prompts"] == 1
