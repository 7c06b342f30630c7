"""``rtt relevance``: label pairs, train, evaluate and look at the relevance model (method.md §4-5).

    rtt relevance label --num-prompts 1700 --seed 0 --out runs/relevance/train.jsonl
    rtt relevance label --prompts rows.jsonl --out labels.jsonl --annotator-url URL --annotator-model NAME
    rtt relevance train configs/relevance.yaml [key=value ...] [--resume]
    rtt relevance evaluate --model runs/relevance/minilm/best --labels runs/relevance/test.jsonl
    rtt relevance show --model runs/relevance/minilm/best --rubric "No commas." --response "Hi, you." --html show.html
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from rubrics2tokens.models.loading import DEFAULT_POLICY


def add_relevance_commands(subparsers: Any) -> None:
    """Add ``relevance label|train|evaluate|show`` to the `rtt` command's subparsers."""
    relevance = subparsers.add_parser("relevance", help="the token relevance model: labels, training, quality")
    commands = relevance.add_subparsers(dest="relevance_command", required=True)

    label = commands.add_parser("label", help="sample policy responses and label them with span-aware "
                                              "verifiers (and optionally an LLM annotator)")
    label.add_argument("--out", required=True, help="label JSONL to write; sampled responses are kept next to it "
                                                    "in OUT.responses.jsonl so a killed run resumes")
    label.add_argument("--prompts", default=None, help="prompt rows (HIR-16K JSONL) instead of testbed prompts")
    label.add_argument("--num-prompts", type=int, default=1000, help="testbed prompts to generate when there are no --prompts")
    label.add_argument("--seed", type=int, default=0, help="testbed and sampling seed")
    label.add_argument("--quality-rubrics", nargs="*", default=(),
                       help="testbed quality families to add to every generated prompt (no_repeated_sentences, "
                            "distinct_words, end_with_sentence, length_floor): the same drawn constraints, more "
                            "rubrics")
    label.add_argument("--samples-per-prompt", type=int, default=1, help="responses sampled for each prompt")
    label.add_argument("--policy", default=DEFAULT_POLICY,
                       help="policy that writes the responses: a Hugging Face Hub id, a local folder or an embedded "
                            "model")
    label.add_argument("--max-new-tokens", type=int, default=128, help="longest response, in tokens")
    label.add_argument("--batch-size", type=int, default=64, help="prompts per generate call")
    label.add_argument("--temperature", type=float, default=1.0, help="sampling temperature of the responses")
    label.add_argument("--annotator-url", default=None,
                       help="OpenAI-compatible API root (e.g. http://127.0.0.1:8000/v1) of an LLM that labels the "
                            "pairs no span-aware verifier labels, by quoting the substrings that decide them; its "
                            "replies are kept in OUT.annotations.jsonl (a killed run resumes), quotes it wrote that "
                            "are not in the response go to OUT.unmatched.jsonl and their pairs are dropped")
    label.add_argument("--annotator-model", default=None,
                       help="model name the annotator's server serves (needed with --annotator-url)")
    label.add_argument("--annotator-concurrency", type=int, default=16, help="annotator requests in flight at once")
    label.set_defaults(run=_label)

    train = commands.add_parser("train", help="train a relevance model from a YAML config")
    train.add_argument("config", help="YAML config, e.g. configs/relevance.yaml")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="override config keys, e.g. max_steps=50")
    train.add_argument("--resume", action="store_true", help="continue from output_dir/last")
    train.set_defaults(run=_train)

    evaluate = commands.add_parser("evaluate", help="token and span metrics of a trained model on a label file")
    evaluate.add_argument("--model", required=True,
                          help="relevance-model folder (e.g. runs/relevance/minilm/best, what configs/relevance.yaml "
                               "trains)")
    evaluate.add_argument("--labels", required=True, help="held-out label JSONL")
    evaluate.add_argument("--out", default=None, help="also write the metrics as JSON here")
    evaluate.add_argument("--batch-size", type=int, default=64, help="(rubric, response window) inputs run together")
    evaluate.set_defaults(run=_evaluate)

    show = commands.add_parser("show", help="one (rubric, response) as a token heatmap")
    show.add_argument("--model", required=True, help="relevance-model folder (e.g. runs/relevance/minilm/best)")
    show.add_argument("--rubric", required=True, help="the rubric text")
    text = show.add_mutually_exclusive_group(required=True)
    text.add_argument("--response", help="the response text")
    text.add_argument("--response-file", help="a file holding the response text")
    show.add_argument("--verdict", choices=("pass", "fail"), default=None,
                      help="the rubric's verdict on the response (needed by a verdict-conditioned model)")
    show.add_argument("--html", default=None, help="also write a standalone HTML page here")
    show.set_defaults(run=_show)


def _label(args: argparse.Namespace) -> None:
    from rubrics2tokens.data.row_formats import load_prompt_rows
    from rubrics2tokens.data.synthetic import generate_rows
    from rubrics2tokens.models.loading import load_policy
    from rubrics2tokens.relevance.labels import label_with_verifiers, sample_responses, write_labels

    if args.annotator_url and not args.annotator_model:
        raise SystemExit("--annotator-url needs --annotator-model (the name the annotator's server serves)")
    if args.prompts and args.quality_rubrics:
        raise SystemExit("--quality-rubrics adds rubrics to generated testbed prompts, not to --prompts")
    rows = (load_prompt_rows(args.prompts) if args.prompts
            else generate_rows(args.num_prompts, seed=args.seed, quality_rubrics=args.quality_rubrics))
    out = Path(args.out)
    model, tokenizer = load_policy(args.policy)
    responses = sample_responses(model, tokenizer, rows, out.with_suffix(".responses.jsonl"),
                                 samples_per_prompt=args.samples_per_prompt, max_new_tokens=args.max_new_tokens,
                                 batch_size=args.batch_size, temperature=args.temperature, seed=args.seed)
    pairs = label_with_verifiers(rows, responses)
    if args.annotator_url:
        pairs += _annotate(args, rows, responses, skip_ids={pair.id for pair in pairs}, out=out)
    write_labels(pairs, out)
    passed = sum(pair.verdict for pair in pairs)
    annotated = sum(pair.source == "annotator" for pair in pairs)
    print(f"wrote {len(pairs)} labelled pairs ({len(pairs) - annotated} from verifiers, {annotated} from the "
          f"annotator; {passed} pass, {len(pairs) - passed} fail) from {len(rows)} prompts to {out}")


def _annotate(args: argparse.Namespace, rows: list, responses: dict, skip_ids: set[str], out: Path) -> list:
    """Annotator labels for the pairs the verifiers left; prints the report and writes unmatched quotes."""
    from rubrics2tokens.data.schema import write_jsonl
    from rubrics2tokens.judge import JudgeConfig, LLMJudge
    from rubrics2tokens.relevance.annotator import label_with_annotator

    config = JudgeConfig(base_url=args.annotator_url, model=args.annotator_model,
                         max_concurrency=args.annotator_concurrency)
    with LLMJudge(config) as annotator:
        pairs, report = label_with_annotator(rows, responses, annotator, out.with_suffix(".annotations.jsonl"),
                                             skip_ids=skip_ids)
    print(report.summary())
    unmatched_path = write_jsonl(report.unmatched, out.with_suffix(".unmatched.jsonl"))
    if report.unmatched:
        print(f"unmatched quotes: {unmatched_path}")
    return pairs


def _train(args: argparse.Namespace) -> None:
    from rubrics2tokens.relevance.training import load_training_config, train_relevance_model

    train_relevance_model(load_training_config(args.config, args.overrides), resume=args.resume)


def _evaluate(args: argparse.Namespace) -> None:
    from rubrics2tokens.data.schema import write_json
    from rubrics2tokens.relevance.labels import load_labels
    from rubrics2tokens.relevance.metrics import evaluate_model, format_report
    from rubrics2tokens.relevance.model import RelevanceModel

    pairs = load_labels(args.labels)
    report = evaluate_model(RelevanceModel.load(args.model).to_inference(), pairs, batch_size=args.batch_size)
    print(format_report(report))
    if args.out:
        print(f"wrote {write_json(report, args.out)}")


def _show(args: argparse.Namespace) -> None:
    from rubrics2tokens.relevance.model import RelevanceModel
    from rubrics2tokens.relevance.show import render_html, render_plain, render_terminal, token_relevance

    response = args.response if args.response is not None else Path(args.response_file).read_text(encoding="utf-8")
    model = RelevanceModel.load(args.model).to_inference()
    verdict = None if args.verdict is None else args.verdict == "pass"
    if model.config.reads_verdict and verdict is None:
        raise SystemExit(f"rtt: error: {args.model} reads the verdict: pass --verdict pass or --verdict fail")
    pieces = token_relevance(model, args.rubric, response, verdict)
    # colour escapes only for a terminal: in a file or a pipe they are noise (and NO_COLOR asks for none)
    render = render_terminal if sys.stdout.isatty() and not os.environ.get("NO_COLOR") else render_plain
    print(render(args.rubric, pieces, model.config.threshold, verdict))
    if args.html:
        Path(args.html).write_text(render_html(args.rubric, pieces, model.config.threshold, verdict),
                                   encoding="utf-8")
        print(f"wrote {args.html}")
