"""k8s/rayjob.yaml and docker/Dockerfile, checked offline: the RayJob fields a study relies on,
every pod template against the Kubernetes schema (kubernetes-validate's own copy, strict: an
unknown field is an error), and that the image the Dockerfile builds is the one the manifest
runs, with this project's pins. Not checked here (only a cluster shows them): KubeRay's own
schema of a RayJob (no package ships it), that the image builds and its tag exists, that the
nodes have the GPUs, taint and volume named, and that the pods may write the bucket."""

import copy
import itertools
import shlex
from importlib import metadata
from pathlib import Path

import pytest
import yaml

kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate (the dev extra) holds the schemas")
dockerfile = pytest.importorskip("dockerfile", reason="dockerfile (the dev extra) is Docker's own parser")
ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def documents():
    return list(yaml.safe_load_all((ROOT / "k8s" / "rayjob.yaml").read_text()))


@pytest.fixture(scope="module")
def job(documents):
    job, = [d for d in documents if d["kind"] == "RayJob"]
    return job


@pytest.fixture(scope="module")
def image_build():
    return dockerfile.parse_file(str(ROOT / "docker" / "Dockerfile"))


def pod_templates(job) -> dict[str, dict]:
    cluster = job["spec"]["rayClusterSpec"]
    templates = {"head": cluster["headGroupSpec"]["template"]}
    templates.update({group["groupName"]: group["template"] for group in cluster["workerGroupSpecs"]})
    if "submitterPodTemplate" in job["spec"]:
        templates["submitter"] = job["spec"]["submitterPodTemplate"]
    return templates


def validate_template(name: str, template: dict) -> None:
    # a pod template is checked as the resource that holds one
    resource = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": name}, "template": template}
    kv.validate(resource, kv.latest_version(), strict=True)


def entrypoint_flags(job) -> tuple[list[str], dict[str, str]]:
    argv = shlex.split(job["spec"]["entrypoint"])
    return argv, {flag: value for flag, value in itertools.pairwise(argv) if flag.startswith("--")}


def test_every_pod_template_and_resource_validates_against_the_kubernetes_schema(documents, job):
    for name, template in pod_templates(job).items():
        validate_template(name, template)
    for document in documents:
        if document["apiVersion"] == "v1":  # Kubernetes' own kinds (KubeRay's RayJob is not among them)
            kv.validate(document, kv.latest_version(), strict=True)


def test_the_check_catches_a_broken_pod_template(job):
    head = pod_templates(job)["head"]
    typo = copy.deepcopy(head)
    container = typo["spec"]["containers"][0]
    container["resource"] = container.pop("resources")
    with pytest.raises(kv.ValidationError, match="resource"):
        validate_template("head", typo)
    wrong_type = copy.deepcopy(head)
    wrong_type["spec"]["containers"][0]["ports"][0]["containerPort"] = "six thousand"
    with pytest.raises(kv.ValidationError):
        validate_template("head", wrong_type)


def test_the_job_runs_the_study_resumably_on_gpu_workers_and_cleans_up(job):
    spec = job["spec"]
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0
    assert spec["backoffLimit"] >= 1  # a retry reruns the entrypoint on a new cluster...
    _, flags = entrypoint_flags(job)
    assert flags["--resume"] == "auto" and flags["--name"]  # ...which continues the study it names
    assert flags["--address"] == "auto"
    assert flags["--storage"].startswith(("s3://", "gs://"))  # outlives the cluster, seen by every pod
    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"] == ray.__version__
    assert cluster["authOptions"]["mode"] == "token"
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"  # no trial on the head
    templates = pod_templates(job)
    workers = [t["spec"] for name, t in templates.items() if name not in ("head", "submitter")]
    assert workers
    for pod in workers:
        assert all(int(c["resources"]["limits"]["nvidia.com/gpu"]) >= 1 for c in pod["containers"])
        assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])


def test_the_image_is_the_one_the_job_runs_with_the_pinned_builds_and_this_package(job, image_build):
    images = {c["image"] for t in pod_templates(job).values() for c in t["spec"]["containers"]}
    assert len(images) == 1 and images.pop().endswith(f"/attnfd:{metadata.version('attnfd')}")

    base, = [c.value[0] for c in image_build if c.cmd == "FROM"]
    cluster = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    assert base == cluster["docker"]["image"]  # the Ray image ray up runs on AWS
    assert base.startswith(f"rayproject/ray:{ray.__version__}-")

    runs = [c.value[0] for c in image_build if c.cmd == "RUN"]
    pins = [d for d in metadata.requires("attnfd") if d.split("==")[0] in ("torch", "torchvision")]
    assert len(pins) == 2
    pinned = [i for i, run in enumerate(runs) if all(p in run.split() for p in pins)]
    package = [i for i, run in enumerate(runs) if run.split()[-1] == "."]
    assert pinned and package, f"no RUN installs {' and '.join(pins)}, or none installs this package"
    assert pinned[0] < package[0]  # pip keeps the pinned builds when it installs the package

    workdir, = [c.value[0] for c in image_build if c.cmd == "WORKDIR"]
    copied = {source for c in image_build if c.cmd == "COPY" for source in c.value[:-1]}
    argv, _ = entrypoint_flags(job)
    script = Path(next(a for a in argv if a.endswith(".py")))
    relative = script.relative_to(workdir)  # the entrypoint runs a script the image holds
    assert relative.parts[0] in copied and (ROOT / relative).is_file()
    assert "attnfd" in copied
