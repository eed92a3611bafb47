"""cluster.yaml, checked offline the way `ray up` checks it: Ray's schema, then Ray's own
default-filling and validation, then what the merged setup installs."""

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

ray = pytest.importorskip("ray")
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster():
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


@pytest.fixture(scope="module")
def schema():
    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def prepared(config):
    full = prepare_config(copy.deepcopy(config))
    validate_config(full)
    return full


def test_it_validates_against_the_installed_rays_schema(cluster, schema):
    jsonschema.validate(cluster, schema)
    full = prepared(cluster)
    assert full["head_node_type"] in full["available_node_types"]


def test_the_merged_setup_installs_the_pinned_builds_and_this_package(cluster):
    full = prepared(cluster)
    (remote, local), = full["file_mounts"].items()
    assert (ROOT / local / "pyproject.toml").is_file()  # the mount is the repository's root
    for commands in (full["head_setup_commands"], full["worker_setup_commands"]):
        text = "\n".join(commands)
        assert "torch==2.14.1" in text and "torchvision==0.29.1" in text
        assert f"pip install --quiet -e {remote}" in text
        # no default of Ray's slipped in (they install a nightly wheel)
        assert "ray-wheels" not in text and "dev0" not in text
        assert text.index("torch==2.14.1") < text.index(f"-e {remote}")
    assert "ATTNFD_RESULTS=s3://" in "\n".join(full["setup_commands"])
    for commands in (full["head_start_ray_commands"], full["worker_start_ray_commands"]):
        assert any("RAY_AUTH_MODE=" in c for c in commands)  # set explicitly on every node


def test_trials_go_to_gpu_workers_only(cluster):
    types = cluster["available_node_types"]
    assert types[cluster["head_node_type"]]["resources"] == {"CPU": 0}
    workers = [t for name, t in types.items() if name != cluster["head_node_type"]]
    assert workers and all(isinstance(t["resources"]["GPU"], int) and t["resources"]["GPU"] >= 1 for t in workers)
    assert all("IamInstanceProfile" in t["node_config"] for t in workers)  # they write to S3


def test_the_check_catches_broken_configs(cluster, schema):
    half_gpu = copy.deepcopy(cluster)
    next(t for n, t in half_gpu["available_node_types"].items() if n != half_gpu["head_node_type"])[
        "resources"]["GPU"] = 0.5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(half_gpu, schema)
    typo = {**copy.deepcopy(cluster), "min_wrokers": 1}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(typo, schema)
    no_head = {**copy.deepcopy(cluster), "head_node_type": "missing"}
    with pytest.raises(ValueError, match="head_node_type"):
        prepared(no_head)
