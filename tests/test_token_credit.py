"""Token credit end to end (verifier spans -> oracle relevance -> the trainer's token term), method.md §5.

The properties run on seeded random testbed responses scored by the real verifiers and tokenized by the
tiny test tokenizer; the token term is the trainer's own (`credit_mask`, `rtt_token_advantages`).
"""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import torch
from accelerate import Accelerator
from transformers import AutoTokenizer

from rubrics2tokens.advantages import token_advantages
from rubrics2tokens.data.schema import Rubric
from rubrics2tokens.data.synthetic import KEYWORDS, generate_rows
from rubrics2tokens.generation.stopping import stop_token_ids
from rubrics2tokens.relevance.alignment import token_char_spans
from rubrics2tokens.relevance.sources import OracleRelevance, RandomRelevance, RelevanceInputs, build_relevance_source
from rubrics2tokens.scoring.router import RoutingScorer
from rubrics2tokens.trainer.heldout import response_records
from rubrics2tokens.trainer.rtt_grpo import credit_mask, rtt_token_advantages
from rubrics2tokens.verifiers import rules

WORDS = ("the", "a", "river", "light", "Today", "warm", "home", "very", "good", "and", "we", "walk", "Green")


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def random_response(rng: random.Random) -> str:
    """Text with the pieces the testbed rules look at: keywords, capitals, commas, bullets, paragraphs."""
    lines = []
    for _ in range(rng.randint(1, 6)):
        words = [rng.choice(WORDS + KEYWORDS) for _ in range(rng.randint(0, 9))]
        line = " ".join(words) + rng.choice(("", ".", ",", ", ok."))
        lines.append(rng.choice(("", "", "* ", "- ")) + line)
        if rng.random() < 0.3:
            lines.append("")
    return "\n".join(lines)


def scored_batch(tokenizer, rng: random.Random, n: int, stopped: bool):
    """n responses to random testbed prompts: completion ids (EOS-terminated when `stopped`), scored rows."""
    rows = generate_rows(n, seed=rng.randint(0, 10**6), min_rubrics=3, max_rubrics=5)
    responses = [random_response(rng) for _ in rows]
    ids = [tokenizer(text, add_special_tokens=False)["input_ids"] + ([tokenizer.eos_token_id] if stopped else [])
           for text in responses]
    length = max(map(len, ids))
    completion_ids = torch.full((n, length), tokenizer.pad_token_id)
    loss_mask = torch.zeros(n, length, dtype=torch.long)
    for i, row in enumerate(ids):
        completion_ids[i, :len(row)] = torch.tensor(row)
        loss_mask[i, :len(row)] = 1
    scored = RoutingScorer(mode="verifiers").score([r.prompt for r in rows], responses, [r.rubrics for r in rows])
    return rows, responses, completion_ids, loss_mask, scored


def token_term(tokenizer, completion_ids, loss_mask, scored, partition: str, verdicts=None):
    """The trainer's token term ``(B, T)`` with oracle relevance, and the mask it credits."""
    weights = OracleRelevance(tokenizer)(RelevanceInputs(completion_ids, loss_mask, scored))
    special = torch.tensor(sorted(tokenizer.all_special_ids))
    mask = credit_mask(completion_ids, loss_mask, scored, special, torch.tensor([tokenizer.eos_token_id]),
                       source_flags_stop=True)
    args = SimpleNamespace(token_partition=partition, token_softmax_tau=1.0, token_std_floor=0.05,
                           relevance_threshold=0.5)
    verdicts = scored.verdicts if verdicts is None else verdicts
    advantages = rtt_token_advantages(Accelerator(cpu=True), verdicts, scored.rubric_weights, weights, mask.float(),
                                      group_size=1, args=args)
    return advantages, mask


@pytest.mark.parametrize("seed", range(4))
def test_under_signed_a_response_failing_every_rubric_gets_no_positive_credit(tokenizer, seed):
    rng = random.Random(seed)
    _, _, completion_ids, loss_mask, scored = scored_batch(tokenizer, rng, 24, stopped=rng.random() < 0.5)
    advantages, _ = token_term(tokenizer, completion_ids, loss_mask, scored, "signed")
    all_failed = (scored.verdicts == 0).sum(dim=1) == (~torch.isnan(scored.verdicts)).sum(dim=1)
    assert all_failed.any(), "the seeded batch has responses failing everything, so the check has teeth"
    assert (advantages[all_failed] <= 0).all()
    # and a positive token is always inside a span that a passed rubric credits
    weights = OracleRelevance(tokenizer)(RelevanceInputs(completion_ids, loss_mask, scored)).nan_to_num(0)
    credited = ((weights > 0.5) & (scored.verdicts == 1)[:, :, None]).any(dim=1)
    assert (advantages[~credited] <= 0).all()


COUNTED_UNITS = {  # lower-limit families -> the units they count (progress toward passing)
    "include_keyword": lambda response, kwargs: rules.find_phrase(response, kwargs["keyword"]),
    "min_words": lambda response, kwargs: rules.find_words(response),
    "exact_bullets": lambda response, kwargs: [m.span(1) for m in rules.BULLET_MARKER.finditer(response)],
    "n_paragraphs": lambda response, kwargs: rules.find_paragraphs(response),
}


@pytest.mark.parametrize("partition", ["signed", "intra_sample"])
@pytest.mark.parametrize("stopped", [True, False], ids=["stopped", "cut"])
def test_a_token_counting_toward_a_failed_lower_limit_is_never_pushed_down_by_it(tokenizer, partition, stopped):
    rng = random.Random(11)
    rows, responses, completion_ids, loss_mask, scored = scored_batch(tokenizer, rng, 64, stopped=stopped)
    checked = 0
    for i, row in enumerate(rows):
        text, token_spans = token_char_spans(tokenizer, completion_ids[i][loss_mask[i].bool()].tolist())
        for k, rubric in enumerate(row.rubrics):
            family = rubric.verifier.removeprefix("testbed:")
            if family not in COUNTED_UNITS or scored.verdicts[i, k] != 0:
                continue
            if family in ("exact_bullets", "n_paragraphs") and len(COUNTED_UNITS[family](text, rubric.kwargs)) \
                    > rubric.kwargs["n"]:
                continue  # too many: an upper limit, the surplus units are rightly blamed
            only_this = torch.full_like(scored.verdicts[i:i + 1], float("nan"))
            only_this[0, k] = 0.0
            advantages, _ = token_term(tokenizer, completion_ids[i:i + 1], loss_mask[i:i + 1],
                                       _row(scored, i), partition, verdicts=only_this)
            units = COUNTED_UNITS[family](text, rubric.kwargs)
            for t, (start, end) in enumerate(token_spans):
                if any(start < b and a < end for a, b in units):
                    assert advantages[0, t] >= -1e-6, (family, text, text[start:end])
                    checked += 1
    assert checked > 20, "enough counted tokens were checked for the property to mean something"


def _row(scored, i):
    return type(scored)(verdicts=scored.verdicts[i:i + 1], rubric_weights=scored.rubric_weights[i:i + 1],
                        spans=scored.spans[i:i + 1], rubrics=scored.rubrics[i:i + 1], stops=scored.stops[i:i + 1])


RIVER_TWICE_NO_COMMAS = [Rubric("river twice", "testbed:include_keyword", {"keyword": "river", "min_count": 2}),
                         Rubric("no commas", "testbed:no_commas")]


def stopped_response(tokenizer, text: str):
    """One response that stopped on its own (EOS last), scored against `RIVER_TWICE_NO_COMMAS`."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    scored = RoutingScorer(mode="verifiers").score([""], [text], [RIVER_TWICE_NO_COMMAS])
    return torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long), scored


def test_a_row_that_flags_nothing_leaves_the_average(tokenizer):
    # "river" once, asked twice, stopped on its own: the keyword row blames only EOS; a passed no-commas row
    # credits nothing and must not halve the other row's credit by entering the average.
    completion_ids, loss_mask, scored = stopped_response(tokenizer, "the river is warm")
    assert scored.verdicts.tolist() == [[0.0, 1.0]]
    both, mask = token_term(tokenizer, completion_ids, loss_mask, scored, "signed")
    keyword_only = scored.verdicts.clone()
    keyword_only[0, 1] = float("nan")
    alone, _ = token_term(tokenizer, completion_ids, loss_mask, scored, "signed", verdicts=keyword_only)
    assert torch.equal(both, alone)
    assert both[0, -1] == -1.0 and (both[0, :-1] == 0).all(), "the stop carries the blame, even though EOS is special"
    assert mask[0, -1], "EOS is credited because a verdict blames the stop"


def test_eos_stays_out_of_the_token_term_when_no_verdict_blames_the_stop(tokenizer):
    completion_ids, loss_mask, scored = stopped_response(tokenizer, "the river and the river, ok")
    advantages, mask = token_term(tokenizer, completion_ids, loss_mask, scored, "intra_sample")
    assert not mask[0, -1] and advantages[0, -1] == 0


def test_a_learned_row_below_the_threshold_flags_nothing_and_leaves_the_average():
    # Two failed rubrics on one response: row 0 clearly flags token 1; row 1 is a learned row of noise (max 0.3).
    weights = torch.tensor([[[0.0, 0.9, 0.1, 0.0], [0.2, 0.3, 0.25, 0.1]]])
    verdicts, mask = torch.tensor([[0.0, 0.0]]), torch.ones(1, 4)
    args = SimpleNamespace(token_partition="signed", token_softmax_tau=1.0, token_std_floor=0.0,
                           relevance_threshold=0.5)
    accelerator = Accelerator(cpu=True)
    dropped = rtt_token_advantages(accelerator, verdicts, torch.ones(1, 2), weights, mask, 1, args)
    torch.testing.assert_close(dropped, -weights[:, 0])  # only row 0 averages: the noise row left
    args.relevance_threshold = 0.0
    kept = rtt_token_advantages(accelerator, verdicts, torch.ones(1, 2), weights, mask, 1, args)
    torch.testing.assert_close(kept, -weights.mean(dim=1))


@pytest.mark.parametrize("partition", ["inter_sample", "rubric_softmax"])  # (group_pooled averages first: an
def test_a_row_that_flags_nothing_keeps_its_verdict_in_the_group_sets(partition):  # empty row never entered it)
    """issue 20 defect 1: empty rows left the z-score sets. One group of two responses, one rubric: response 0
    passed and its relevance flags token 1; response 1 failed and flags nothing. Response 1 leaves its own
    average (it gets no token credit), but its fail stays in the group's set, so response 0's pass is measured
    against it. With the fail dropped, the set held response 0 alone and every credit was 0."""
    verdicts = torch.tensor([[1.0], [0.0]])
    weights = torch.tensor([[[0.0, 1.0, 0.0]], [[0.1, 0.0, 0.2]]])
    mask = torch.ones(2, 3)
    args = SimpleNamespace(token_partition=partition, token_softmax_tau=1.0, token_std_floor=0.0,
                           relevance_threshold=0.5)
    got = rtt_token_advantages(Accelerator(cpu=True), verdicts, torch.ones(2, 1), weights, mask, 2, args)
    expected = token_advantages(verdicts, weights, mask, group_size=2, partition=partition,
                                rubric_weights=torch.tensor([[1.0], [0.0]]))
    torch.testing.assert_close(got, expected)
    assert got[0].abs().sum() > 0, "response 0 is credited against response 1's fail"
    assert (got[1] == 0).all(), "response 1 flags nothing, so it gets no token credit"


def test_only_a_source_that_flags_the_stop_lets_the_stop_token_carry_credit(tokenizer):
    """issue 20 defect 3: EOS unmasked for every relevance source. "river" once of twice and stopped: the verdict
    blames the stop, but only the oracle puts weight on it; under random relevance (or a learned model, or
    contrast) the stop token would get a z-scored value from a weight never meant for it."""
    completion_ids, loss_mask, scored = stopped_response(tokenizer, "the river is warm")
    assert bool(scored.stops[0, 0]) and scored.verdicts[0, 0] == 0
    special = torch.tensor(sorted(tokenizer.all_special_ids))
    stops = torch.tensor([tokenizer.eos_token_id])
    for source, credited in ((OracleRelevance(tokenizer), True), (RandomRelevance(seed=0), False)):
        mask = credit_mask(completion_ids, loss_mask, scored, special, stops, source.flags_stop)
        assert bool(mask[0, -1]) == credited, type(source).__name__
        assert mask[0, :-1].all(), "every other token of the response may carry credit"


RESPONSE_ADVANTAGES = torch.tensor([0.3, -0.3])


def token_terms_of_a_stopped_pair(tokenizer, tiny_model_dir, tmp_path, **settings) -> torch.Tensor:
    """``(2, T)`` token term (advantage minus the response advantage) a trainer with ``settings`` gives two copies
    of "the river is warm" + EOS, a response whose verdict blames the stop ("river" once of twice)."""
    from test_trainer import make_trainer

    trainer = make_trainer(tiny_model_dir, tmp_path, token_partition="intra_sample", num_generations=2,
                           per_device_train_batch_size=2, **settings)
    completion_ids, loss_mask, scored = stopped_response(tokenizer, "the river is warm")
    completion_ids, loss_mask = completion_ids.repeat(2, 1), loss_mask.repeat(2, 1)
    scored = type(scored)(verdicts=scored.verdicts.repeat(2, 1), rubric_weights=scored.rubric_weights.repeat(2, 1),
                          spans=scored.spans * 2, rubrics=scored.rubrics * 2, stops=scored.stops.repeat(2, 1))
    output = {"completion_ids": completion_ids, "completion_mask": loss_mask, "advantages": RESPONSE_ADVANTAGES}
    trainer._add_token_credit(output, "train", scored, ["p", "p"])
    return output["advantages"] - RESPONSE_ADVANTAGES[:, None]


def test_a_random_source_gives_the_stop_token_no_credit_in_a_training_step(tiny_model_dir, tmp_path, tokenizer):
    """issue 20 defect 3 through the trainer: under relevance_source 'random' the EOS of a response whose verdict
    blames the stop gets the response advantage only, no token term."""
    terms = token_terms_of_a_stopped_pair(tokenizer, tiny_model_dir, tmp_path, relevance_source="random")
    assert (terms[:, :-1] != 0).any(), "the token term is there on the other tokens"
    torch.testing.assert_close(terms[:, -1], torch.zeros(2))


@pytest.mark.parametrize("stop_credit", [True, False])
def test_stop_credit_decides_whether_the_oracle_blames_the_stop_token(tiny_model_dir, tmp_path, tokenizer,
                                                                      stop_credit):
    """The oracle blames the stop of a response that stopped short of a lower limit; under intra_sample that lone
    flag z-scores the stop to about -sqrt(length) (docs/study.md, the intra pilot). stop_credit=false leaves the
    stop the response advantage only, as every other source does."""
    terms = token_terms_of_a_stopped_pair(tokenizer, tiny_model_dir, tmp_path, relevance_source="oracle",
                                          stop_credit=stop_credit)
    if stop_credit:
        assert (terms[:, -1] < -1.0).all() and (terms[:, :-1] > 0).all(), "the lone blamed stop z-scored"
    else:
        torch.testing.assert_close(terms[:, -1], torch.zeros(2))


def test_every_stop_id_of_the_generation_config_counts_as_a_stop(tokenizer):
    """issue 20 defect 4: one EOS id assumed. A chat model that also stops on <|endoftext|> (its generation config
    lists two ids): a response ending on either stopped on its own, so it is not truncated, its failed lower
    limit blames that stop token, and the token may carry the blame."""
    config = SimpleNamespace(eos_token_id=[tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|endoftext|>")])
    stop_ids = stop_token_ids(tokenizer, config)
    assert stop_ids == sorted(config.eos_token_id)
    other_stop = max(set(stop_ids) - {tokenizer.eos_token_id})
    text = "the river is warm"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [other_stop]
    completion_ids, loss_mask = torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long)
    scored = RoutingScorer(mode="verifiers").score([""], [text], [RIVER_TWICE_NO_COMMAS])

    weights = build_relevance_source("oracle", tokenizer, policy=SimpleNamespace(generation_config=config))(
        RelevanceInputs(completion_ids, loss_mask, scored))
    assert weights[0, 0, -1] == 1.0, "the stop token carries the failed lower limit's blame"
    special = torch.tensor(sorted(tokenizer.all_special_ids))
    mask = credit_mask(completion_ids, loss_mask, scored, special, torch.tensor(stop_ids), source_flags_stop=True)
    assert mask[0, -1]
    record, = response_records(0, ["p"], completion_ids, loss_mask, scored, torch.zeros(1), tokenizer,
                               torch.zeros(1), stop_ids)
    assert record["truncated"] is False
