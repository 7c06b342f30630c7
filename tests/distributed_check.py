"""Run under `torchrun --nproc_per_node 2` by test_distributed.py (CPU, gloo).

1. `rtt_token_advantages` on each rank's slice of a batch whose GRPO groups straddle the two ranks (and
   whose ranks have different rubric and token widths) must equal the single-process result, for every
   partition.
2. One real RTTGRPOTrainer step with a cross-group partition runs to the end on two ranks.
"""

import os
import sys
from pathlib import Path

import torch
from accelerate import Accelerator

sys.path.insert(0, str(Path(__file__).parent))

from rubrics2tokens.advantages import PARTITIONS  # noqa: E402
from rubrics2tokens.trainer import RTTConfig, rtt_token_advantages  # noqa: E402


def random_batch(rows: int, width: int, length: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    verdicts = torch.randint(0, 2, (rows, width), generator=generator).float()
    verdicts[torch.rand(rows, width, generator=generator) < 0.15] = float("nan")
    weights = torch.rand(rows, width, length, generator=generator)
    weights[torch.rand(rows, width, generator=generator) < 0.1] = float("nan")  # unknown relevance rows
    lengths = torch.randint(1, length + 1, (rows,), generator=generator)
    mask = (torch.arange(length) < lengths[:, None]).float()
    rubric_weights = torch.rand(rows, width, generator=generator) + 0.5
    return verdicts, rubric_weights, weights, mask


def check_advantages(output_dir: str) -> None:
    # TrainingArguments reset accelerate's state, so the configs come before the Accelerator
    configs = {partition: RTTConfig(output_dir=output_dir, use_cpu=True, token_partition=partition, report_to=[])
               for partition in PARTITIONS}
    accelerator = Accelerator(cpu=True)
    rank, world = accelerator.process_index, accelerator.num_processes
    rows, width, length, group_size = 12, 4, 9, 4  # rank 0 holds rows 0-5, rank 1 rows 6-11: group 1 straddles
    verdicts, rubric_weights, weights, mask = random_batch(rows, width, length, seed=0)
    verdicts[: rows // 2, -1] = float("nan")  # rank 0's prompts have one rubric fewer: it sends width - 1 slots
    local = slice(rank * rows // world, (rank + 1) * rows // world)
    # each rank sees only as many token positions as its longest row, as TRL's local padding does
    local_length = int(mask[local].sum(1).max())
    local_width = width - 1 if rank == 0 else width
    for partition, args in configs.items():
        expected = rtt_token_advantages(_SingleProcess(), verdicts, rubric_weights, weights, mask, group_size, args)
        got = rtt_token_advantages(accelerator, verdicts[local, :local_width], rubric_weights[local, :local_width],
                                   weights[local, :local_width, :local_length], mask[local, :local_length],
                                   group_size, args)
        torch.testing.assert_close(got, expected[local][:, :local_length], atol=1e-5, rtol=1e-5,
                                   msg=lambda m: f"{partition} on rank {rank}: {m}")
    print(f"rank {rank}: advantages equal to one process for {', '.join(PARTITIONS)}")


class _SingleProcess:
    """Stands in for an Accelerator of one process: gathering returns the tensor itself."""

    num_processes, process_index = 1, 0

    @staticmethod
    def pad_across_processes(tensor, dim=0, pad_index=0):
        return tensor

    @staticmethod
    def gather(tensor):
        return tensor


def train_one_step(model_dir: str, output_dir: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rubrics2tokens.data.dataset import to_trl_dataset
    from rubrics2tokens.data.synthetic import generate_rows
    from rubrics2tokens.scoring.router import RoutingScorer
    from rubrics2tokens.trainer import RTTGRPOTrainer

    args = RTTConfig(output_dir=output_dir, use_cpu=True, report_to=[], max_steps=1, per_device_train_batch_size=2,
                     num_generations=4, max_completion_length=8, token_partition="inter_sample", logging_steps=1,
                     save_strategy="no")
    trainer = RTTGRPOTrainer(model=AutoModelForCausalLM.from_pretrained(model_dir), scorer=RoutingScorer(mode="verifiers"),
                             args=args, train_dataset=to_trl_dataset(generate_rows(8, seed=5)),
                             processing_class=AutoTokenizer.from_pretrained(model_dir))
    trainer.train()
    assert trainer.state.global_step == 1
    print(f"rank {trainer.accelerator.process_index}: trained one step")


if __name__ == "__main__":
    model_dir, output_dir = sys.argv[1], sys.argv[2]
    check_advantages(output_dir)
    train_one_step(model_dir, output_dir)
    # Interpreter teardown with gloo's worker threads alive sometimes aborts a rank ("terminate called without
    # an active exception", SIGABRT) after every check passed, even after destroy_process_group (pytorch#179291).
    # Once both ranks are past the barrier nothing is left to check, so leave without running that teardown.
    torch.distributed.barrier()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
