"""Where a benchmark run keeps its files: the committed report in bench/, the logs and the quick
run's output in bench/.runs/ (ignored by git)."""
from __future__ import annotations

from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RUNS_DIR = BENCH_DIR / ".runs"


def run_log(name: str) -> Path:
    """The log file of one instance or helper process of this run."""
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    return RUNS_DIR / f"{name}.log"
