"""slurm/study.sbatch, run by bash as Slurm would run it, on a fake one-node allocation.

The node is this machine seen through Linux namespaces: its own process table (so the
``ray stop`` that ``ray symmetric-run`` ends with, and its "is Ray already running here?" check,
see only the job's processes, never another Ray on this machine), its own network (loopback,
where the node's address is 127.0.0.2 and its name resolves to it, as a cluster's DNS would),
and its own /var/tmp (a folder of the test, for Ray's files). When the job's shell ends, the
kernel ends whatever the job left in that process table. ``srun`` and ``scontrol`` are small
stand-ins on PATH that record how they were called and run the command on the one node.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_study_cli import TINY_SET

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "slurm" / "study.sbatch"
NODE, NODE_IP, JOB_ID = "node001", "127.0.0.2", "4242"

SRUN = """#!/bin/bash
# srun on a one-node allocation: record the call, drop the options (the script gives each as
# --option=value), run the command on this node
echo "srun $*" >> "$FAKE_SLURM_LOG"
while [ $# -gt 0 ] && [[ $1 == -* ]]; do shift; done
exec "$@"
"""
SCONTROL = """#!/bin/bash
echo "scontrol $*" >> "$FAKE_SLURM_LOG"
case $1 in
show) [ "$2" = hostnames ] && tr ',' '\\n' <<< "$3" ;;
requeue) ;;
*) echo "fake scontrol: $1 is not faked" >&2; exit 1 ;;
esac
"""
# run as the namespace's first process: set the node up, run the job, then list what it left
NODE_SETUP = f"""set -e
ip link set lo up
ip addr add {NODE_IP}/8 dev lo
cp /etc/hosts "$FAKE_NODE/hosts" && echo '{NODE_IP} {NODE}' >> "$FAKE_NODE/hosts"
mount --bind "$FAKE_NODE/hosts" /etc/hosts
mount --bind "$FAKE_NODE/tmp" /var/tmp
hostname {NODE}
set +e
bash "$@"
status=$?
ps -e -o pid=,args= > "$FAKE_NODE/left"
exit $status
"""
NAMESPACES = ["unshare", "--user", "--map-root-user", "--net", "--pid", "--uts", "--mount", "--fork", "--mount-proc"]


def _namespaces_work() -> bool:
    if not shutil.which("unshare") or not shutil.which("ip"):
        return False
    probe = subprocess.run([*NAMESPACES, "bash", "-c", f"ip link set lo up && ip addr add {NODE_IP}/8 dev lo"],
                           check=False, capture_output=True)
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not _namespaces_work(),
                                reason="a fake node needs unshare (user, network, PID, mount namespaces) and ip")


def fake_allocation(tmp_path: Path) -> dict:
    """The environment sbatch gives the script on a one-node job, with the stand-ins first on PATH."""
    shims, node = tmp_path / "bin", tmp_path / "node"
    for folder in (shims, node / "tmp", tmp_path / "home"):
        folder.mkdir(parents=True)
    for name, text in (("srun", SRUN), ("scontrol", SCONTROL)):
        (shims / name).write_text(text)
        (shims / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "SLURM_", "STUDY_", "ATTNFD_"))}
    env.update(PATH=f"{shims}:{Path(sys.executable).parent}:{env['PATH']}", HOME=str(tmp_path / "home"),
               TMPDIR="/var/tmp", FAKE_NODE=str(node), FAKE_SLURM_LOG=str(tmp_path / "slurm.log"),
               SLURM_JOB_ID=JOB_ID, SLURM_JOB_NAME="attnfd", SLURM_JOB_NODELIST=NODE, SLURM_NNODES="1",
               SLURM_CPUS_PER_TASK="2", SLURM_GPUS_PER_TASK="0", SLURM_SUBMIT_DIR=str(ROOT),
               STUDY_STORAGE=str(tmp_path / "studies"))
    return env


def run_job(env: dict, args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*NAMESPACES, "bash", "-c", NODE_SETUP, "node", str(SCRIPT), *args], check=False, cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


def shown(text: str) -> str:
    """A job's output for a failed assertion, without the lines of ray stop's process list."""
    return "\n".join(line for line in text.splitlines() if "VINFO" not in line)[-4000:]


def batch_shell(launcher: subprocess.Popen) -> int:
    """The job's shell, as this machine numbers it: the fake node's first process runs it."""
    def children(pid: int) -> list[int]:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]

    for pid in (p for first in children(launcher.pid) for p in children(first)):
        if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2] == [b"bash", str(SCRIPT).encode()]:
            return pid
    raise AssertionError("the job's shell is not running")


def finished_trials(folder: Path) -> dict[str, list[dict]]:
    epochs = folder / "results" / "epochs"
    tables = {p.stem: pq.read_table(p).to_pylist() for p in sorted(epochs.glob("*.parquet"))} if epochs.is_dir() else {}
    return {tid: rows for tid, rows in tables.items() if rows and rows[-1]["status"] == "completed"}


def test_a_signalled_job_is_requeued_and_the_requeued_job_finishes_its_study(tmp_path, teacher_cache):
    """The first run (RAY_LAUNCH=manual: ray start on this user's ports) gets the job's --signal
    once a trial has finished; the requeued job, the same script and arguments, through
    ray symmetric-run, continues the study to its results and runs no finished trial again."""
    env = fake_allocation(tmp_path)
    study = ["tune/search.py", "--num-samples", "2", "--confirm", "0", "--no-asha", "--epochs", "1",
             "--max-concurrent", "1", "--gpus-per-trial", "0", "--cache-dir", teacher_cache, "--quiet", *TINY_SET]
    folder = tmp_path / "studies" / f"attnfd-{JOB_ID}"  # the default name: the job's, which a requeue keeps
    log = tmp_path / "first.log"
    with open(log, "w") as out:
        first = subprocess.Popen([*NAMESPACES, "bash", "-c", NODE_SETUP, "node", str(SCRIPT), *study], cwd=ROOT,
                                 env={**env, "RAY_LAUNCH": "manual"}, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    while first.poll() is None and not finished_trials(folder) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert first.poll() is None, shown(log.read_text())
    os.kill(batch_shell(first), signal.SIGUSR1)  # what --signal=B:USR1@300 does near the time limit
    assert first.wait(timeout=120) == 0, shown(log.read_text())
    calls = (tmp_path / "slurm.log").read_text().splitlines()
    assert f"scontrol requeue {JOB_ID}" in calls
    base = 20000 + os.getuid() % 120 * 100  # this user's ports, as slurm/README.md gives them
    head, = [c for c in calls if c.startswith("srun ") and " ray start --head" in c]
    assert f"--node-ip-address={NODE_IP} --port={base}" in head and f"--min-worker-port={base + 10}" in head
    before = finished_trials(folder)
    assert 1 <= len(before) < 3, "the first run was not stopped part way"

    again = run_job(env, study)
    output = again.stdout + again.stderr
    assert again.returncode == 0, shown(output)
    assert "On head node. Starting Ray cluster head" in output  # symmetric-run took this node for the head
    assert f"study attnfd-{JOB_ID}: continuing it" in output
    srun = [c for c in (tmp_path / "slurm.log").read_text().splitlines()[len(calls):] if c.startswith("srun ")]
    assert len(srun) == 1 and "--ntasks-per-node=1" in srun[0] and f"symmetric-run --address {NODE}:" in srun[0]
    assert "--min-nodes 1 --num-cpus=2 --num-gpus=0" in srun[0]
    summary = pq.read_table(folder / "results" / "summary.parquet").to_pylist()
    assert [r["status"] for r in summary] == ["completed"] * 3  # two searched trials and the reference
    after = finished_trials(folder)
    for tid, rows in before.items():
        assert json.dumps(after[tid], sort_keys=True) == json.dumps(rows, sort_keys=True)  # not run again
    for trial in summary:
        result = json.loads((folder / f"trial_{trial['trial_id']}" / "result.json").read_text().splitlines()[-1])
        assert result["node_ip"] == NODE_IP
    # token authentication was on: the job made the token every Ray process read
    assert (tmp_path / "home" / ".ray" / "auth_token").stat().st_size > 0
    # symmetric-run stopped Ray itself: nothing of the job ran on once it ended
    left = [line.strip() for line in (tmp_path / "node" / "left").read_text().splitlines()]
    assert [line for line in left if not line.startswith("1 ") and "ps -e" not in line] == []
