"""``analysis/ablation.py --results s3://...``: a study read where it lives, through pyarrow's S3
file system, from moto's S3 server on loopback; the same tables as from the local folder."""

from __future__ import annotations

from pathlib import Path

import pyarrow.fs as pafs
import pytest
from analysis_results_folder import layers_study, search_study
from conftest import s3_bucket

from attnfd.analysis.cli import main

BUCKET = "attnfd-studies"


@pytest.fixture(scope="module")
def storage(module_tmp, s3):
    """Two studies written locally, then uploaded to s3://attnfd-studies/studies/."""
    local = module_tmp / "studies"
    search_study(local)
    layers_study(local, created="2026-05-01T00:00:00")  # the newest
    bucket = s3_bucket(s3, BUCKET)
    pafs.copy_files(str(local), f"{BUCKET}/studies", source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=bucket)
    return local


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as stop:
        code = stop.code
    out = capsys.readouterr()
    return code, out.out, out.err


def tables(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir()) if p.suffix in (".md", ".csv", ".tex")}


@pytest.mark.parametrize("study", ["ablation", "search"])
def test_a_study_folder_uri_gives_the_tables_of_the_local_folder(study, storage, s3, tmp_path, capsys):
    code, local_out, err = run(["--results", str(storage / study), "--out", str(tmp_path / "local")], capsys)
    assert code == 0, err
    uri = f"s3://{BUCKET}/studies/{study}?{s3}"
    code, remote_out, err = run(["--results", uri, "--out", str(tmp_path / "remote")], capsys)
    assert code == 0, err
    local, remote = tables(tmp_path / "local"), tables(tmp_path / "remote")
    assert len(local) >= 9 and remote == local
    # the printed tables too; only the line saying where it wrote differs
    assert remote_out.rsplit("wrote ", 1)[0] == local_out.rsplit("wrote ", 1)[0]
    report = (tmp_path / "remote" / "report.html").read_text()
    assert f"folder: s3://{BUCKET}/studies/{study}<" in report and "endpoint_override" not in report


def test_a_storage_folder_uri_takes_its_newest_study_and_writes_here(storage, s3, tmp_path, monkeypatch, capsys):
    # the endpoint from the environment this time, the URI plain
    monkeypatch.setenv("AWS_ENDPOINT_URL", dict(p.split("=", 1) for p in s3.split("&"))["endpoint_override"])
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["--results", f"s3://{BUCKET}/studies"], capsys)
    assert code == 0, err
    assert out.startswith("Table 3: distilled layers")
    # nothing can sensibly be written into the bucket by default: a local folder named after the study
    assert out.strip().endswith("open ablation-analysis/report.html")
    run(["--results", str(storage / "ablation"), "--out", str(tmp_path / "local")], capsys)
    assert tables(tmp_path / "ablation-analysis") == tables(tmp_path / "local")


@pytest.mark.parametrize("results, message", [
    ("s3://{bucket}/studies/nothing-here?{s3}", "results folder not found: s3://{bucket}/studies/nothing-here"),
    ("s3://no-such-bucket/study?{s3}", "results folder not found: s3://no-such-bucket/study"),
    ("nosuchfs://bucket/study", "cannot read nosuchfs://bucket/study: ArrowInvalid: Unrecognized filesystem type"),
    ("s3://{bucket}/studies?{s3}&colour=blue",
     "cannot read s3://{bucket}/studies: ArrowInvalid: Unexpected query parameter in S3 URI: 'colour'"),
])
def test_a_bad_uri_or_a_missing_study_is_one_line_and_exit_2(results, message, storage, s3, tmp_path, capsys):
    code, _, err = run(["--results", results.format(bucket=BUCKET, s3=s3), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and err.startswith("attnfd: error: " + message.format(bucket=BUCKET)) and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_out_must_be_a_local_folder(storage, s3, capsys):
    code, _, err = run(["--results", str(storage / "ablation"), "--out", f"s3://{BUCKET}/analysis?{s3}"], capsys)
    assert code == 2
    assert err == f"attnfd: error: --out must be a local folder, got the URI s3://{BUCKET}/analysis; write here, " \
                  "then copy it up\n"
