"""A study on a two-node Ray cluster (head + one worker) started by the test, on loopback."""

import os

import pytest
from conftest import TINY

from attnfd.study.runner import StudySpec, run_study

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def two_nodes():
    from ray.cluster_utils import Cluster

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    # 127.0.0.2, not 127.0.0.1: Ray rewrites the latter to the machine's outward address
    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 1, "include_dashboard": False, "node_ip_address": "127.0.0.2"})
    cluster.add_node(num_cpus=1, node_ip_address="127.0.0.2")
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


def test_trials_run_on_both_nodes(tmp_path, teacher_cache, two_nodes):
    assert two_nodes.address.startswith("127.0.0.2:")
    storage = str(tmp_path / "studies")
    cells = [{"backbone": "resnet18", "distill": None}, {"backbone": "resnet18", "distill": "attnfd"}]
    # one CPU per trial and one per node: the two trials must go to different nodes
    spec = StudySpec(protocol="layers", base={**TINY, "cache_dir": teacher_cache, "role": "student", "epochs": 3},
                     storage=storage, name="two", cells=cells, address=two_nodes.address, verbose=0)
    summary = run_study(spec)

    assert not ray.is_initialized()  # the study disconnected its driver; the cluster is the test's
    assert [r["status"] for r in summary] == ["completed", "completed"]
    nodes = {node["NodeID"] for node in ray_nodes(two_nodes.address)}
    used = {r["node_id"] for r in summary}
    assert len(used) == 2 and used <= nodes


def ray_nodes(address):
    ray.init(address=address, _node_ip_address="127.0.0.2")
    try:
        return [node for node in ray.nodes() if node["Alive"]]
    finally:
        ray.shutdown()
