"""Paths and files the tests share: the repository, and the benchmark files the package ships."""
from pathlib import Path

from rubrics2tokens.data.schema import read_jsonl
from rubrics2tokens.resources import benchmark_file, ifeval_reference_file

REPO = Path(__file__).resolve().parents[1]
IFEVAL_DATA = benchmark_file("ifeval")
IFBENCH_DATA = benchmark_file("ifbench")
MULDIMIF_DATA = benchmark_file("muldimif")
IFEVAL_STRICT = ifeval_reference_file("strict")
IFEVAL_LOOSE = ifeval_reference_file("loose")


def read_rows(path):
    """Every object of a JSONL file (.gz too)."""
    return [row for _, row in read_jsonl(path)]
