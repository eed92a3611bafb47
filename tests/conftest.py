import os
import shutil

import pytest
import torch

torch.set_num_threads(2)

# the smallest run that still exercises every part of the trainer
TINY = dict(
    dataset="shapes", image_size=32, train_size=8, val_size=4, batch_size=4, head_channels=16,
    backbone="resnet18", teacher_backbone="resnet18", epochs=2, teacher_epochs=1, lr=0.01,
)


@pytest.fixture(scope="session")
def teacher_cache(tmp_path_factory):
    """One teacher cache for the session: the tiny teacher is trained once."""
    return str(tmp_path_factory.mktemp("teacher-cache"))


@pytest.fixture(scope="module")
def module_tmp(request, tmp_path_factory):
    """A folder for a module's shared fixtures, removed after the module when none of its tests
    failed: a trial's checkpoint is about 90 MB, and kept to the session's end they filled CI's disk."""
    failures = request.session.testsfailed
    folder = tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])
    yield folder
    if request.session.testsfailed == failures:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def tiny(tmp_path, teacher_cache):
    """A tiny config dict with its own output folder."""
    return {**TINY, "cache_dir": teacher_cache, "out_dir": str(tmp_path / "run")}


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance for a module's studies, on 127.0.0.2 (Ray rewrites 127.0.0.1 to the
    machine's outward address); a module asks for it with ``pytestmark``."""
    import ray

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.2", log_to_driver=False)
    yield
    ray.shutdown()
