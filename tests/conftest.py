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


def with_teacher(values):
    """``values`` (a config dict or TrainConfig) as given, its teacher trained into the cache
    first when it distils and none is there: the trainer only loads a teacher."""
    from attnfd.config import TrainConfig
    from attnfd.teachers import ensure_teacher

    config = values if isinstance(values, TrainConfig) else TrainConfig.from_dict(values)
    if config.distilling:
        ensure_teacher(config, quiet=True)
    return values


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


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto's S3 server on 127.0.0.1, with credentials it takes in the environment for the
    module (no real credentials or config files read, no instance metadata asked); yields the
    query that points a pyarrow S3 URI at it."""
    moto_server = pytest.importorskip("moto.server", reason="moto[server] (the dev extra) serves S3 on loopback")
    nothing = tmp_path_factory.mktemp("no-aws")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        env.setenv("AWS_CONFIG_FILE", str(nothing / "config"))
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(nothing / "credentials"))
        env.delenv("AWS_ENDPOINT_URL", raising=False)
        env.delenv("AWS_PROFILE", raising=False)
        server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        yield f"endpoint_override=http://{host}:{port}&scheme=http&region=us-east-1"
        server.stop()


def s3_bucket(s3: str, bucket: str):
    """A new bucket on the ``s3`` server, as a pyarrow file system."""
    import pyarrow.fs as pafs

    fs, _ = pafs.FileSystem.from_uri(f"s3://{bucket}?{s3}&allow_bucket_creation=true")
    fs.create_dir(bucket)
    return fs
