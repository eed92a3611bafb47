"""A one-epoch study on each miniature data set of the literature (CamVid, ADE20K, COCO-Stuff-164k,
Pascal Context), then the analysis of its results, with nothing changed but the data set's
name and folder.

Each study is the student alone; COCO-Stuff's (171 classes, the widest) adds AttnFD from a
teacher the study trains on the copy, on a Ray worker that reads the data root itself. A
teacher costs about 15 s here, so the other three stay without one: their data reach the
trainer and the analysis the same way. One Ray instance (on 127.0.0.2) serves the four; each
is tiny (a few images of about 50 px, 16-channel heads), about 40 s on 2 cores in all.
"""

import pytest
from conftest import TINY

from attnfd.data import dataset_spec
from attnfd.data.miniature import write_ade20k, write_camvid, write_coco_stuff164k, write_pascal_context59

pytest.importorskip("ray")
pytestmark = pytest.mark.usefixtures("local_ray")

WRITERS = {"camvid": write_camvid, "ade20k": write_ade20k, "coco_stuff164k": write_coco_stuff164k,
           "pascal_context59": write_pascal_context59}
DISTILLED = "coco_stuff164k"


def test_a_study_and_its_analysis_run_on_each_miniature_set(tmp_path, teacher_cache):
    from attnfd.analysis import analyse, load_study, write
    from attnfd.study.runner import StudySpec, run_study

    storage = tmp_path / "studies"
    for name, writer in WRITERS.items():
        root = tmp_path / "data" / name
        writer(root, train=4, val=2)
        base = {**TINY, "dataset": name, "data_root": str(root), "cache_dir": teacher_cache, "role": "student",
                "epochs": 1, "workers": 0}
        cells = [{"distill": None}] + ([{"distill": "attnfd"}] if name == DISTILLED else [])
        spec = StudySpec(protocol="methods", base=base, storage=str(storage), name=name, cells=cells, verbose=-1)
        summary = run_study(spec)
        classes = list(dataset_spec(name).classes)
        assert sorted(str(r["config/distill"]) for r in summary) == sorted(str(c["distill"]).lower() for c in cells)
        assert all(r["status"] == "completed" and r["epoch"] == 1 for r in summary), name
        assert all(r["config/dataset"] == name and len(r["per_class_iou"]) == len(classes) for r in summary), name

        study = load_study(storage / name, quiet=True)
        assert study.class_names == classes
        analysis = analyse(study)
        assert analysis.tables[0].title.startswith("Table 1")
        if name == DISTILLED:
            # the per-class figure (the student alone against AttnFD) names the data set's classes
            assert list(analysis.figures["per_class_1"].data[0].x) == classes
        assert write(analysis, tmp_path / "analysis" / name)
