"""The dataset job on Ray: the same files as the local engine, resumed, restarted after SIGKILL.

One local Ray (2 CPUs, its own temporary folder, no dashboard) is shared by the module; every
`explain_folder(engine="ray")` call joins it instead of starting its own.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from kerasviz import jobs
from kerasviz.cli import main

ray = pytest.importorskip("ray")  # CI installs the extra (.ci/run), so this never skips there

from test_jobs import ROOT, manifest_lines, read_rows, snapshot, tiny_model, write_images  # noqa: E402

OCCLUSION = {"patch": 4, "stride": 2}


@pytest.fixture(scope="module")
def local_ray():
    # A short private folder per pytest worker: two xdist workers never share one Ray.
    folder = tempfile.mkdtemp(prefix="kvray", dir="/tmp")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        _temp_dir=folder,
    )
    yield ray
    ray.shutdown()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """A folder of 10 images and one corrupt file, its local-engine output, and the model."""
    root = tmp_path_factory.mktemp("rayjob")
    images = write_images(root / "in", 10, seed=4)
    (images / "a" / "broken.png").write_bytes(b"\x89PNG not an image")
    model = tiny_model()
    model_file = root / "tiny.keras"
    model.save(model_file)
    reference = root / "local"
    run(model, images, reference, "local")
    return model, model_file, images, reference


def run(model, images, out, engine, settings=OCCLUSION, **options):
    return jobs.explain_folder(
        model,
        images,
        "occlusion",
        out,
        batch_size=4,
        settings=settings,
        progress=False,
        engine=engine,
        **options,
    )


def test_cli_engine_ray_writes_the_local_engines_bytes_with_a_corrupt_image(
    tmp_path, local_ray, job, capsys
):
    _, model_file, images, reference = job
    args = ["explain", "--model", str(model_file), "--images", str(images), "--method"]
    args += ["occlusion", "--patch", "4", "--stride", "2", "--batch-size", "4", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "ray"), "--engine", "ray", "--workers", "2"]) == 0
    errors = [row for row in read_rows(tmp_path / "ray") if "error" in row]
    assert [row["name"] for row in errors] == ["a/broken"]
    assert snapshot(tmp_path / "ray") == snapshot(reference)
    maps = np.load(tmp_path / "ray" / "b" / "img0000.occlusion.npy")
    assert maps.shape == (16, 16) and np.ptp(maps) > 0
    # The Ray options need the Ray engine.
    assert main([*args, "--out", str(tmp_path / "x"), "--workers", "2"]) == 2
    assert "--engine ray" in capsys.readouterr().err


def test_resume_redoes_only_the_missing_images(tmp_path, local_ray, job):
    model, _, images, reference = job
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    # A run that stopped after 4 images: the later manifest lines and their maps are gone.
    lines = (out / jobs.MANIFEST).read_bytes().splitlines(keepends=True)
    kept = [line for line in lines if b'"error"' not in line][:4]
    for line in lines:
        if line not in kept:
            name = json.loads(line)["name"]
            for p in out.glob(f"{name}.occlusion.*"):
                p.unlink()
    (out / jobs.MANIFEST).write_bytes(b"".join(kept))
    stamp = {p: p.stat().st_mtime_ns for p in out.rglob("*.npy")}
    result = run(model, images, out, "ray", workers=1)
    assert (result.skipped, result.written, len(result.failed)) == (4, 6, 1)
    assert all(p.stat().st_mtime_ns == t for p, t in stamp.items())  # never redone
    assert snapshot(out) == snapshot(reference)


def test_missing_ray_is_one_line_and_help_imports_neither(tmp_path, job, capsys, monkeypatch):
    model, model_file, images, _ = job
    args = ["explain", "--model", str(model_file), "--images", str(images), "--method"]
    args += ["occlusion", "--quiet", "--out", str(tmp_path / "none"), "--engine", "ray"]
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert 'pip install "kerasviz[ray]"' in err and len(err.splitlines()) == 1
    with pytest.raises(ImportError, match=r'pip install "kerasviz\[ray\]"'):
        run(model, images, tmp_path / "api", "ray")
    assert not (tmp_path / "none").exists() and not (tmp_path / "api").exists()
    code = "import sys, kerasviz.cli; print(sorted(sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert "'ray'" not in loaded.stdout and "'tensorflow'" not in loaded.stdout


@pytest.mark.slow
def test_sigkill_of_driver_and_workers_then_restart_gives_the_same_files(tmp_path, local_ray, job):
    model, model_file, _, _ = job
    images = write_images(tmp_path / "in", 96, seed=5)
    run(model, images, tmp_path / "ref", "local", {"patch": 4, "stride": 1})
    out = tmp_path / "out"
    args = ["--model", str(model_file), "--images", str(images), "--method", "occlusion"]
    args += ["--patch", "4", "--stride", "1", "--batch-size", "4", "--quiet", "--out", str(out)]
    args += ["--engine", "ray", "--workers", "2"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "RAY_TMPDIR": tempfile.mkdtemp(dir="/tmp")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kerasviz.cli", "explain", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: the driver and what it started
    )
    deadline = time.monotonic() + 240
    while manifest_lines(out) < 8 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    _, stderr = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, stderr[-2000:]
    done_at_kill = manifest_lines(out)
    assert 8 <= done_at_kill < 96, done_at_kill
    result = run(model, images, out, "ray", {"patch": 4, "stride": 1}, workers=2)
    assert result.skipped >= done_at_kill and result.skipped + result.written == 96
    assert snapshot(out) == snapshot(tmp_path / "ref")
