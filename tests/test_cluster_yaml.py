"""cluster.yaml (AWS) and cluster-gcp.yaml (GCP), checked offline the way `ray up` checks them:
Ray's schema, then Ray's own default-filling and validation, then what the merged setup
installs and how the nodes start. The GCP file is the AWS one on another cloud: the same image,
setup and start commands, with GCS for S3."""

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

ray = pytest.importorskip("ray")
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
# each file, and how its workers reach the bucket in --storage
CLUSTERS = {"cluster.yaml": ("s3://", "IamInstanceProfile"), "cluster-gcp.yaml": ("gs://", "serviceAccounts")}


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


@pytest.fixture(scope="module", params=list(CLUSTERS))
def named(request):
    return request.param, load(request.param)


@pytest.fixture(scope="module")
def schema():
    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def prepared(config):
    full = prepare_config(copy.deepcopy(config))
    validate_config(full)
    return full


def workers(config) -> list[dict]:
    return [t for name, t in config["available_node_types"].items() if name != config["head_node_type"]]


def test_it_validates_against_the_installed_rays_schema(named, schema):
    _, cluster = named
    jsonschema.validate(cluster, schema)
    full = prepared(cluster)
    assert full["head_node_type"] in full["available_node_types"]


def test_the_merged_setup_installs_the_pinned_builds_and_this_package(named):
    name, cluster = named
    full = prepared(cluster)
    remote, = [r for r, local in full["file_mounts"].items() if (ROOT / local / "pyproject.toml").is_file()]
    for commands in (full["head_setup_commands"], full["worker_setup_commands"]):
        text = "\n".join(commands)
        assert "torch==2.14.1" in text and "torchvision==0.29.1" in text
        assert f"pip install --quiet -e {remote}" in text
        # no default of Ray's slipped in (they install a nightly wheel)
        assert "ray-wheels" not in text and "dev0" not in text
        assert text.index("torch==2.14.1") < text.index(f"-e {remote}")
    scheme, _ = CLUSTERS[name]
    assert f"ATTNFD_RESULTS={scheme}" in "\n".join(full["setup_commands"])


def test_every_node_and_driver_use_rays_token_auth(named):
    _, cluster = named
    full = prepared(cluster)
    for commands in (full["head_start_ray_commands"], full["worker_start_ray_commands"]):
        assert any("RAY_AUTH_MODE=token" in c for c in commands)  # set explicitly on every node
    assert any("RAY_AUTH_MODE=token" in c and ".bashrc" in c for c in full["setup_commands"])  # drivers in a shell
    # the one token, the one `ray get-auth-token --generate` made on the laptop, on every node
    assert full["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"


def test_trials_go_to_gpu_workers_only(named):
    name, cluster = named
    types = cluster["available_node_types"]
    assert types[cluster["head_node_type"]]["resources"] == {"CPU": 0}
    gpu_workers = workers(cluster)
    assert gpu_workers and all(isinstance(t["resources"]["GPU"], int) and t["resources"]["GPU"] >= 1
                               for t in gpu_workers)
    _, writes_bucket = CLUSTERS[name]
    assert all(writes_bucket in t["node_config"] for t in gpu_workers)  # they write to the bucket themselves


def test_the_check_catches_broken_configs(named, schema):
    _, cluster = named
    half_gpu = copy.deepcopy(cluster)
    workers(half_gpu)[0]["resources"]["GPU"] = 0.5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(half_gpu, schema)
    typo = {**copy.deepcopy(cluster), "min_wrokers": 1}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(typo, schema)
    no_head = {**copy.deepcopy(cluster), "head_node_type": "missing"}
    with pytest.raises(ValueError, match="head_node_type"):
        prepared(no_head)


def test_the_gcp_workers_get_their_gpus_and_stop_for_maintenance():
    cluster = load("cluster-gcp.yaml")
    for worker in workers(cluster):
        node = worker["node_config"]
        assert sum(a["acceleratorCount"] for a in node["guestAccelerators"]) == worker["resources"]["GPU"]
        # GCE takes scheduling as one object (some of Ray's own GCP examples give a list); a VM
        # with a GPU cannot live-migrate, and a preemptible one must not restart by itself
        assert node["scheduling"] == {"preemptible": True, "onHostMaintenance": "TERMINATE", "automaticRestart": False}
        assert {"key": "install-nvidia-driver", "value": "True"} in node["metadata"]["items"]
        assert any("nvidia-smi" in c for c in worker["initialization_commands"])  # Docker needs the driver


def test_gcp_runs_what_aws_runs():
    aws, gcp = load("cluster.yaml"), load("cluster-gcp.yaml")
    assert gcp["setup_commands"] == [c.replace("s3://", "gs://") for c in aws["setup_commands"]]
    for key in ("docker", "file_mounts", "head_start_ray_commands", "worker_start_ray_commands"):
        assert gcp[key] == aws[key], key
