"""The judge's verdict cache opened by several processes at once, as every rank of `accelerate launch` does."""

import multiprocessing

from rubrics2tokens.judge.cache import VerdictCache


def open_and_close(path: str, barrier) -> None:
    barrier.wait()  # both processes open the fresh file at the same moment
    VerdictCache(path).close()


def test_processes_opening_a_fresh_cache_together_all_succeed(tmp_path):
    # Before the WAL switch was retried, about 6% of such opens failed with "database is locked" (18 of 300);
    # 60 starts (120 opens) all succeeding would then have had a chance below 1 in 1000.
    context = multiprocessing.get_context("fork")
    failed = 0
    for start in range(60):
        barrier = context.Barrier(2)
        processes = [context.Process(target=open_and_close, args=(str(tmp_path / f"{start}.sqlite"), barrier))
                     for _ in range(2)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=60)
        failed += sum(process.exitcode != 0 for process in processes)
    assert failed == 0, f"{failed} of 120 opens failed"
