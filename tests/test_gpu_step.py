"""bench/gpu_step.py runs where no GPU is: it says so, and its --smoke mode runs every part
(per-method steps, the 24 GB check, cohorts against separate processes) on the CPU."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "gpu_step.py"


def run(*args):
    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=600,
                          check=False)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="on a GPU machine it measures for real")
def test_without_a_gpu_it_says_so_and_exits_0():
    done = run()
    assert done.returncode == 0 and "no CUDA device" in done.stdout


def test_its_every_part_runs_on_the_cpu(tmp_path):
    done = run("--smoke", "--methods", "attnfd,kd", "--cache-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert any(line.split()[:1] == ["attnfd"] and "x plain" not in line for line in lines)
    assert any("plain student step" in line and "teacher inference" in line for line in lines)
    assert sum(1 for line in lines if line.strip().startswith(("attnfd", "kd"))) == 4  # steps, and the 24 GB check
    cohorts = [line.split() for line in lines if line.strip()[:1].isdigit()]
    assert [row[0] for row in cohorts] == ["1", "2"] and all(float(row[1]) > 0 and float(row[2]) > 0 for row in cohorts)
