"""`rtt study`: a grid of run-config variants x seeds, each an ordinary `rtt train` run, resumable."""

from rubrics2tokens.study.runner import run_study
from rubrics2tokens.study.spec import PlannedRun, Study, load_study

__all__ = ["PlannedRun", "Study", "load_study", "run_study"]
