"""The GPU check script (benchmarks/gpu_check.sh) in its tiny CPU configuration: every figure in one JSON file.

The real check runs once on a GPU machine (benchmarks/GPU_CHECK.md); this runs the same
script, steps and files on a few thousand images in the quick profile, so that the one
GPU run does not fail on something a CPU could have found.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"


def load_driver():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_check(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TLCOURSE_")}  # the script sets its own
    env["PYTHON"] = sys.executable
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_the_tiny_check_runs_every_step_and_writes_every_figure(tmp_path: Path) -> None:
    out, work = tmp_path / "out", tmp_path / "work"
    book_before = {p.name: p.read_bytes() for p in (REPO / "book" / "timings").glob("*")}
    proc = run_check("--tiny", "--out", str(out), "--work", str(work))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    record = json.loads((out / "gpu_check.json").read_text())
    assert record["schema"] == "tlcourse-gpu-check-v1" and record["complete"] is True and record["tiny"] is True
    assert {"machine", "config", "tests", "data", "bench", "pipeline", "sync", "case_study", "notebooks",
            "wall_s", "started", "finished"} <= set(record)
    machine = record["machine"]
    assert machine["torch"] == torch.__version__ and machine["cuda"] == torch.version.cuda
    assert (machine["gpu"] is None) == (not torch.cuda.is_available())

    tests = record["tests"]  # every CUDA test was collected and reported one by one
    assert tests["status"] == "ok" and tests["collected"] == len(tests["cases"]) >= 8
    if not torch.cuda.is_available():
        assert tests["skipped"] == tests["collected"]
        assert {c["message"] for c in tests["cases"]} == {"needs a CUDA GPU (run make gpu-check on a GPU machine)"}
    assert (out / "tests.xml").is_file()

    for name, images in (("mnist", 2_000), ("cifar10", 1_000)):  # the two pipelines side by side
        p = record["pipeline"][name]
        assert p["images"] == images and len(p["document"]["epoch_s"]) == len(p["device_resident"]["epoch_s"]) == 2
        assert p["ratio"] == pytest.approx(p["document"]["median_s"] / p["device_resident"]["median_s"], rel=0.01)
    assert record["sync"]["steps_per_s"] > 0 and record["sync"]["steps_per_s_with_sync"] > 0
    (study,) = record["case_study"]  # one run per --epochs: 1x1 in the tiny configuration
    assert (study["source_epochs"], study["target_epochs"]) == (1, 1)
    assert study["total_s"] == pytest.approx(study["source_s"] + study["target_s"], abs=0.01)
    assert 0 <= study["target_test_acc"] <= 1 and study["document_estimate_s"] > 0

    notebooks = record["notebooks"]
    assert notebooks["status"] == "ok" and [r["notebook"] for r in notebooks["rows"]] == ["00_setup"]
    assert notebooks["rows"][0]["seconds"] > 0 and not notebooks["not_run"] and not notebooks["errors"]
    table = (out / "quick.md").read_text()
    assert "| 0 · Set-up |" in table and "Profile `quick`" in table
    # the tiny run measured nothing the website should show: book/timings is as it was
    assert {p.name: p.read_bytes() for p in (REPO / "book" / "timings").glob("*")} == book_before
    assert "notebook 00_setup" in proc.stdout and "figures:" in proc.stdout  # the summary is printed last


def test_a_step_the_budget_does_not_reach_is_recorded_as_such(tmp_path: Path) -> None:
    proc = run_check("--tiny", "--steps", "bench,notebooks", "--budget-s", "0.001", "--out", str(tmp_path / "out"),
                     "--work", str(tmp_path / "work"))
    assert proc.returncode == 1
    record = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert record["complete"] is False and "tests" not in record
    for step in ("data", "bench", "notebooks"):
        assert record[step]["status"] == "not reached" and "budget" in record[step]["why"]


def test_a_misspelt_step_is_refused_naming_the_nearest_and_nothing_is_written(tmp_path: Path) -> None:
    proc = run_check("--tiny", "--steps", "tests,bnech", "--out", str(tmp_path / "out"), timeout=60)
    assert proc.returncode == 2
    assert "unknown step 'bnech' (did you mean 'bench'?)" in proc.stderr
    proc = run_check("--tiny", "--notebooks", "03_source", "--out", str(tmp_path / "out"), timeout=60)
    assert proc.returncode == 2 and "did you mean '03_source_model'?" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_step_past_its_time_is_stopped_with_all_it_started(tmp_path: Path) -> None:
    driver = load_driver()
    child = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], " \
            "start_new_session=True); print('started', flush=True); time.sleep(60)"
    t0 = time.perf_counter()
    res = driver.run_logged([sys.executable, "-c", child], timeout=3, log=tmp_path / "log", env=dict(os.environ))
    assert res["timed_out"] and res["rc"] is None and time.perf_counter() - t0 < 30
    assert "started" in res["tail"]
    psutil = pytest.importorskip("psutil")
    sleepers = [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] and
                "time.sleep(60)" in " ".join(p.info["cmdline"]) and "subprocess" not in " ".join(p.info["cmdline"])]
    assert not [p for p in sleepers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
