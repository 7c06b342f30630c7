"""A tiny but real policy for fast tests: a byte-level BPE tokenizer trained here and a 2-layer Llama."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "write a short story about the river and include the word blue. the response contains no commas.",
    "* first bullet\n* second bullet\n\nthe end of the story. café naïve 日本語 über",
    "Hello, World! Every response starts with a word and ends with a phrase; at most 40 words.",
    "<<a title>> paragraphs are separated by blank lines. keyword keyword keyword",
] * 20


def build_tiny_model(directory: Path, seed: int = 0) -> Path:
    """Write a tokenizer and a randomly initialised tiny Llama into ``directory``; return it."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   bos_token="<|im_start|>")
    fast.chat_template = CHATML
    fast.save_pretrained(directory)

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
                         pad_token_id=fast.pad_token_id, tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(directory)
    return directory


def build_yes_judge(directory: Path, seed: int = 0) -> Path:
    """A tiny model that answers every chat "YES", for judge tests whose every verdict must be known: its layers
    add nothing to the residual stream, so the next token depends on the current one only, and its untied output
    head maps the last token of the chat template's assistant opening to the first token of "YES", each token of
    "YES" to the next, and the last to the end of turn."""
    build_tiny_model(directory, seed)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(directory)
    template = tokenizer.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False,
                                             add_generation_prompt=True)
    opening = tokenizer(template, add_special_tokens=False).input_ids[-1]
    chain = [opening, *tokenizer("YES", add_special_tokens=False).input_ids, tokenizer.eos_token_id]
    assert len(set(chain)) == len(chain), "each token of the chain must lead to one next token"
    judge = LlamaForCausalLM(LlamaConfig.from_pretrained(directory, tie_word_embeddings=False))
    with torch.no_grad():
        for name, weight in judge.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight", "embed_tokens.weight", "lm_head.weight")):
                weight.zero_()
        for dimension, (token, next_token) in enumerate(zip(chain, chain[1:])):  # one hidden dimension per link
            judge.model.embed_tokens.weight[token, dimension] = 1.0
            judge.lm_head.weight[next_token, dimension] = 10.0
    judge.save_pretrained(directory)
    return directory
