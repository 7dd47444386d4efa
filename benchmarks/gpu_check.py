"""The GPU check: CUDA tests, pipeline benchmark, whole case study and every notebook, figures in one JSON file.

Run it through ``benchmarks/gpu_check.sh`` (``make gpu-check``), which installs carried wheels
when the interpreter lacks Jupyter's packages; ``benchmarks/GPU_CHECK.md`` says how to prepare
and send it to a GPU machine. Steps, each in its own process, within one time budget:

1. ``tests``: the CUDA tests (``pytest tests/test_cuda.py -m cuda``), results per test;
2. ``bench``: ``benchmarks/bench_pipeline.py`` on the device at the real sizes: the
   document's pipeline (ToTensor + DataLoader, 2 workers) and the device-resident one side
   by side, with their ratio, then the whole case study's wall time (``--epochs`` each);
3. ``notebooks``: every notebook in a fresh kernel in the profile (``time_notebooks.py``),
   its table copied to ``--out`` and (not with ``--tiny``) to ``book/timings/<profile>.md``.

``gpu_check.json`` in ``--out`` (default ``$OUT``) is rewritten after every step, so a run stopped at
its limit keeps what it measured. ``--tiny``: the same steps on a few thousand images, quick profile.

Example:
    PYTHON=.venv/bin/python bash benchmarks/gpu_check.sh --tiny --out /tmp/gpu-check
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import difflib
import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCHEMA = "tlcourse-gpu-check-v1"
STEPS = ("tests", "bench", "notebooks")
NOTEBOOK_PACKAGES = ("nbclient", "nbformat", "jupyter_client", "ipykernel", "IPython", "ipywidgets")
CONFIGS: dict[str, dict[str, Any]] = {
    # The real check: the full profile at the real datasets' sizes; 10x10 is the issue's target, 10x30 the profile's.
    "full": {"profile": "full", "digits": 60_000, "cifar": 50_000, "test_images": 10_000, "reps": 3,
             "epochs": ["10x10", "10x30"], "notebooks": None, "budget_s": 480},
    # Its CPU test: the same steps on a few thousand images, quick profile, one notebook.
    "tiny": {"profile": "quick", "digits": 2_000, "cifar": 1_000, "test_images": 500, "reps": 2,
             "epochs": ["1x1"], "notebooks": ["00_setup"], "budget_s": 300},
}
STEP_CAP_S = {"tests": 150, "bench": 240}  # no single step may eat the notebooks' time
MIN_START_S = 5  # a step is not started with less time than this left


def notebook_names() -> list[str]:
    return sorted(p.stem for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options, all checked before anything runs or is written."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="the CPU test configuration (quick profile, small sizes)")
    p.add_argument("--out", type=Path, default=None, help="folder for gpu_check.json and the timings (default: $OUT)")
    p.add_argument("--work", type=Path, default=None,
                   help="data, checkpoints and results of the run (default: /tmp/tlcourse-gpu-check[-tiny])")
    p.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of {', '.join(STEPS)}")
    p.add_argument("--notebooks", default=None, help="comma-separated notebook names (default: all, in order)")
    p.add_argument("--budget-s", type=float, default=None, help="seconds for all steps together (full: 480, tiny: 300)")
    p.add_argument("--keep-state", action="store_true",
                   help="keep the work folder's checkpoints, results and notebook rows (to go on after an earlier run)")
    p.add_argument("--merge-timings", type=Path, default=None,
                   help="an earlier run's <profile>.json: its notebook rows are kept beside the new ones")
    args = p.parse_args(argv)
    config = CONFIGS["tiny" if args.tiny else "full"]
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    for step in steps:
        if step not in STEPS:
            near = difflib.get_close_matches(step, STEPS, n=1)
            p.error(f"--steps: unknown step {step!r}{f' (did you mean {near[0]!r}?)' if near else ''}; "
                    f"choose from {', '.join(STEPS)}")
    if not steps:
        p.error("--steps is empty")
    known = notebook_names()
    chosen = [n.strip().removesuffix(".ipynb") for n in args.notebooks.split(",")] if args.notebooks else None
    for name in chosen or []:
        if name not in known:
            near = difflib.get_close_matches(name, known, n=1)
            p.error(f"--notebooks: no notebook {name!r}{f' (did you mean {near[0]!r}?)' if near else ''}; "
                    f"the notebooks are {', '.join(known)}")
    if args.budget_s is not None and args.budget_s <= 0:
        p.error("--budget-s must be positive")
    if args.merge_timings is not None and not args.merge_timings.is_file():
        p.error(f"--merge-timings: no file {args.merge_timings}")
    out = args.out or (Path(os.environ["OUT"]) if os.environ.get("OUT") else None)
    if out is None:
        p.error("say where the figures go: --out DIR (or set OUT)")
    args.out, args.steps = out.resolve(), [s for s in STEPS if s in steps]
    args.work = (args.work or Path(f"/tmp/tlcourse-gpu-check{'-tiny' if args.tiny else ''}")).resolve()
    args.notebook_list = [n for n in known if n in (chosen or config["notebooks"] or known)]
    args.budget_s = args.budget_s or config["budget_s"]
    args.config = config
    return args


def run_logged(cmd: list[str], *, timeout: float, log: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run ``cmd``, echoing its output and saving it to ``log``; at ``timeout`` end it and all it started.

    Returns ``rc`` (None when it was stopped), ``timed_out``, ``seconds`` and ``tail`` (its last output).
    """
    t0 = time.perf_counter()
    with open(log, "w") as sink:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)

        def pump() -> None:
            for line in proc.stdout:
                sys.stdout.write(line)
                sink.write(line)
            sys.stdout.flush()

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            proc.wait(timeout=max(timeout, 0.1))
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
            stop_tree(proc)
        reader.join(timeout=10)
    tail = log.read_text(errors="replace")[-3000:]
    return {"rc": None if timed_out else proc.returncode, "timed_out": timed_out,
            "seconds": round(time.perf_counter() - t0, 2), "tail": tail}


def stop_tree(proc: subprocess.Popen) -> None:
    """End ``proc``, its process group and every descendant (Jupyter kernels start sessions of their own)."""
    try:
        import psutil

        family = psutil.Process(proc.pid).children(recursive=True)
    except Exception:  # psutil missing, or the process already gone
        psutil, family = None, []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for target in [proc.pid, *family]:
            with contextlib.suppress(Exception):  # already gone
                os.killpg(target, sig) if target == proc.pid else target.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
            if psutil is None or not psutil.wait_procs(family, timeout=5)[1]:  # (gone, alive): none alive
                return


class Check:
    """The run: its environment, its clock, and the JSON file rewritten after every step."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.t0 = args, time.perf_counter()
        self.json_path = args.out / "gpu_check.json"
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg",
                    "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
                    "TLCOURSE_STANDIN": os.environ.get("TLCOURSE_STANDIN", "cifar10,fashion_mnist"),
                    "TLCOURSE_DOWNLOAD": "0",  # that machine reaches no network
                    "TLCOURSE_PROFILE": args.config["profile"],
                    "TLCOURSE_DATA": str(args.work / "data"), "TLCOURSE_CHECKPOINTS": str(args.work / "checkpoints"),
                    "TLCOURSE_RESULTS": str(args.work / "results"), "JUPYTER_RUNTIME_DIR": str(args.work / "jupyter")}
        self.record: dict[str, Any] = {"schema": SCHEMA, "complete": False, "tiny": args.tiny,
                                       "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                                       "config": {**args.config, "notebooks": args.notebook_list, "steps": args.steps,
                                                  "budget_s": args.budget_s, "work": str(args.work)}}

    def left(self) -> float:
        return self.args.budget_s - (time.perf_counter() - self.t0)

    def save(self, **fields: Any) -> None:
        import tlcourse as tl

        self.record.update(fields, wall_s=round(time.perf_counter() - self.t0, 1))
        tl.atomic_write_text(self.json_path, json.dumps(self.record, indent=1, default=str) + "\n")

    def not_reached(self, step: str) -> bool:
        """True (and recorded) when too little of the budget is left to start ``step``."""
        if self.left() >= MIN_START_S:
            return False
        self.save(**{step: {"status": "not reached", "why": f"the budget of {self.args.budget_s:.0f} s was used up"}})
        return True


def machine_info() -> dict[str, Any]:
    import torch
    import torchvision

    cuda = torch.cuda.is_available()
    info = {"gpu": torch.cuda.get_device_name(0) if cuda else None,
            "gpu_capability": ".".join(map(str, torch.cuda.get_device_capability(0))) if cuda else None,
            "gpu_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) if cuda else None,
            "torch": torch.__version__, "torchvision": torchvision.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if cuda else None, "python": platform.python_version(),
            "cpu_cores": os.cpu_count(), "machine": platform.machine(), "driver": None}
    smi = shutil.which("nvidia-smi") and subprocess.run([shutil.which("nvidia-smi"), "--query-gpu=driver_version",
                                                          "--format=csv,noheader"], capture_output=True, text=True)
    info["driver"] = smi.stdout.split("\n")[0].strip() or None if smi and smi.returncode == 0 else None
    return info


def make_data(check: Check) -> None:
    """Unpack the offline real data and generate the stand-ins, before any clock that should not count it."""
    import dataclasses

    import tlcourse as tl

    cfg, t0 = check.args.config, time.perf_counter()
    os.environ.update({k: check.env[k] for k in ("TLCOURSE_STANDIN", "TLCOURSE_DOWNLOAD", "TLCOURSE_DATA", "TLCOURSE_PROFILE")})
    profile = tl.get_profile(cfg["profile"])
    sizes = {dataclasses.replace(profile, standin_train=cfg["digits"], standin_test=cfg["test_images"]), profile}
    for p in sizes:
        for name in ("mnist", "fashion_mnist", "cifar10"):
            tl.load_dataset(name, train=True, profile=p)
    check.save(data={"status": "ok", "standins": sorted(tl.standin_datasets()),
                     "sources": {n: tl.data_source(n).title for n in ("mnist", "fashion_mnist", "cifar10")},
                     "seconds": round(time.perf_counter() - t0, 1)})


def junit_results(path: Path) -> dict[str, Any]:
    """Counts and one entry per test from pytest's JUnit XML."""
    cases = []
    for case in ET.parse(path).iter("testcase"):
        outcome, message = "passed", ""
        for child in case:
            kind = {"failure": "failed", "error": "error", "skipped": "skipped"}.get(child.tag)
            if kind:
                outcome, message = kind, (child.get("message") or child.text or "")[:500]
                if kind == "skipped" and child.get("type") == "pytest.xfail":
                    outcome = "xfailed"
        cases.append({"name": case.get("name"), "outcome": outcome, "seconds": float(case.get("time", 0)),
                      "message": message})
    counts = {k: sum(c["outcome"] == k for c in cases) for k in ("passed", "failed", "error", "skipped", "xfailed")}
    return {**counts, "collected": len(cases), "cases": cases}


def run_tests(check: Check) -> None:
    xml = check.args.out / "tests.xml"
    cmd = [sys.executable, "-m", "pytest", "tests/test_cuda.py", "-m", "cuda", "-q", "-rA", f"--junitxml={xml}"]
    if importlib.util.find_spec("nbformat") is None:
        cmd.append("--noconftest")  # the root conftest needs nbformat for nbval; test_cuda.py needs neither
    xml.unlink(missing_ok=True)
    res = run_logged(cmd, timeout=min(check.left(), STEP_CAP_S["tests"]), log=check.args.work / "tests.log",
                     env=check.env)
    figures = junit_results(xml) if xml.exists() else {}
    bad = res["rc"] != 0 or not figures.get("collected") or figures["failed"] or figures["error"]
    status = "timeout" if res["timed_out"] else ("failed" if bad else "ok")
    check.save(tests={"status": status, "seconds": res["seconds"], "rc": res["rc"], **figures,
                      **({"output_tail": res["tail"]} if status != "ok" else {})})


def run_bench(check: Check) -> None:
    cfg, path = check.args.config, check.args.work / "bench.json"
    cmd = [sys.executable, "benchmarks/bench_pipeline.py", "--profile", cfg["profile"], "--digits", str(cfg["digits"]),
           "--cifar", str(cfg["cifar"]), "--test-images", str(cfg["test_images"]), "--reps", str(cfg["reps"]),
           "--json", str(path)] + [a for e in cfg["epochs"] for a in ("--epochs", e)]
    path.unlink(missing_ok=True)
    res = run_logged(cmd, timeout=min(check.left(), STEP_CAP_S["bench"]), log=check.args.work / "bench.log",
                     env=check.env)
    bench = json.loads(path.read_text()) if path.exists() else {}
    ok = res["rc"] == 0 and bench.get("complete")
    status = "timeout" if res["timed_out"] else ("ok" if ok else "failed")
    check.save(bench={"status": status, "seconds": res["seconds"], "rc": res["rc"],
                      **({"output_tail": res["tail"]} if status != "ok" else {})},
               pipeline=bench.get("pipeline"), sync=bench.get("sync"), case_study=bench.get("case_study"),
               bench_machine={k: bench.get(k) for k in ("device", "gpu", "torch", "cuda", "cudnn", "standins",
                                                          "load_average_before", "load_average_after")})


def run_notebooks(check: Check) -> None:
    """Each notebook in a fresh kernel (time_notebooks.py); a failing one is recorded and the rest still run."""
    args, profile = check.args, check.args.config["profile"]
    missing = [m for m in NOTEBOOK_PACKAGES if importlib.util.find_spec(m) is None]
    if missing:
        check.save(notebooks={"status": "skipped", "why": f"missing packages {', '.join(missing)}: carry their "
                                                           "wheels as benchmarks/GPU_CHECK.md says"})
        return
    timings = args.work / "timings"  # emptied at the start unless --keep-state: then earlier rows are kept
    timings.mkdir(parents=True, exist_ok=True)
    if args.merge_timings is not None:
        shutil.copy(args.merge_timings, timings / f"{profile}.json")
    todo, errors, stopped, t0 = list(args.notebook_list), [], None, time.perf_counter()

    def rows() -> list[dict[str, Any]]:
        f = timings / f"{profile}.json"
        return json.loads(f.read_text())["rows"] if f.exists() else []

    while todo and check.left() >= MIN_START_S:
        cmd = [sys.executable, "benchmarks/time_notebooks.py", "--profile", profile, "--out", str(timings),
               "--timeout", str(int(check.left()) + 1)] + [f"notebooks/{n}.ipynb" for n in todo]
        res = run_logged(cmd, timeout=check.left(), log=args.work / f"notebooks-{len(errors)}.log", env=check.env)
        done = {r["notebook"] for r in rows()}
        first_open = next((n for n in todo if n not in done), None)
        if res["timed_out"]:
            stopped = {"notebook": first_open, "why": "stopped at the end of the time budget"}
            todo = todo[todo.index(first_open):] if first_open else []
            break
        if res["rc"] != 0 and first_open is not None:
            errors.append({"notebook": first_open, "output_tail": res["tail"]})
            todo = [n for n in todo[todo.index(first_open) + 1:] if n not in done]
        else:
            todo = [n for n in todo if n not in done]
        check.save(notebooks={"status": "running", "rows": rows(), "errors": errors})
    finished = rows()
    not_run = [n for n in todo if n not in {r["notebook"] for r in finished}]
    status = "ok" if not (errors or not_run) else ("failed" if errors else "incomplete")
    figures = {"status": status, "profile": profile, "seconds": round(time.perf_counter() - t0, 1), "rows": finished,
               "total_s": round(sum(r["seconds"] for r in finished), 1), "errors": errors, "stopped": stopped,
               "not_run": not_run}
    md = timings / f"{profile}.md"
    if md.exists():
        note = "" if not not_run and not errors else (
            "\n" + "; ".join(filter(None, [f"Not timed in this run: {', '.join(not_run)}" if not_run else "",
                                           f"failed: {', '.join(e['notebook'] for e in errors)}" if errors else ""]))
            + " (see `gpu_check.json`).\n")
        targets = [args.out] + ([] if args.tiny else [REPO / "book" / "timings"])
        for folder in targets:
            (folder / md.name).write_text(md.read_text() + note)
            shutil.copy(timings / f"{profile}.json", folder / f"{profile}.json")
        figures["written"] = [str(folder / md.name) for folder in targets]
    check.save(notebooks=figures)


def summary_lines(record: dict[str, Any]) -> list[str]:
    """The figures that matter, as short lines (printed last: the end of the output is what comes back)."""
    m = record.get("machine", {})
    lines = [f"gpu check ({'tiny' if record['tiny'] else 'full'}): {m.get('gpu') or 'no GPU'}, torch {m.get('torch')}, "
             f"CUDA {m.get('cuda')}, driver {m.get('driver')}, wall {record.get('wall_s')} s"]
    if "tests" in record:
        t = record["tests"]
        lines.append(f"tests: {t['status']} " + ", ".join(f"{t[k]} {k}" for k in
                                                          ("passed", "failed", "error", "skipped", "xfailed") if t.get(k)))
        lines += [f"   {c['outcome']}: {c['name']}: {c['message'][:200]}" for c in t.get("cases", [])
                  if c["outcome"] in ("failed", "error")]
    for name, p in (record.get("pipeline") or {}).items():
        lines.append(f"pipeline {name}: document {p['document']['median_s']:.2f} s/epoch, device-resident "
                     f"{p['device_resident']['median_s']:.2f} s/epoch, ratio {p['ratio']:.1f}x")
    if record.get("sync"):
        s = record["sync"]
        lines.append(f"sync: {s['steps_per_s']:,.0f} steps/s, {s['steps_per_s_with_sync']:,.0f} with a sync per step")
    for c in record.get("case_study") or []:
        lines.append(f"case study {c['source_epochs']}+{c['target_epochs']} epochs: {c['total_s']:.2f} s "
                     f"(source {c['source_s']:.2f}, target {c['target_s']:.2f}); document's pipeline ~"
                     f"{c['document_estimate_s']:.0f} s estimated, {c['ratio_estimate']:.0f}x")
    if "notebooks" in record:
        nb = record["notebooks"]
        for r in nb.get("rows", []):
            lines.append(f"notebook {r['notebook']:24s} {r['seconds']:8.1f} s")
        lines.append(f"notebooks: {nb['status']}, total {nb.get('total_s')} s"
                     + (f", not run {nb['not_run']}" if nb.get("not_run") else "")
                     + (f", failed {[e['notebook'] for e in nb['errors']]}" if nb.get("errors") else "")
                     + (f" ({nb['why']})" if nb.get("why") else ""))
    for step in ("bench", "data"):
        if record.get(step, {}).get("status") not in (None, "ok"):
            lines.append(f"{step}: {record[step]['status']}")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import tlcourse as tl  # after the arguments: a typo is refused at once

    tl.ensure_writable(args.out, what="the GPU check's figures", env="OUT")
    args.work.mkdir(parents=True, exist_ok=True)
    if not args.keep_state:  # a fresh start, as a learner's first run
        for sub in ("checkpoints", "results", "timings"):
            shutil.rmtree(args.work / sub, ignore_errors=True)
    else:  # go on after an earlier run, but never resume a training that run's deadline cut short
        for partial in (args.work / "checkpoints").glob("*.partial-*"):
            partial.unlink()
    check = Check(args)
    check.save(machine=machine_info())
    print(f"gpu check: steps {', '.join(args.steps)}, budget {args.budget_s:.0f} s, out {args.out}, work {args.work}",
          flush=True)
    try:
        if "tests" in args.steps and not check.not_reached("tests"):
            run_tests(check)
        if {"bench", "notebooks"} & set(args.steps) and not check.not_reached("data"):
            make_data(check)
        if "bench" in args.steps and not check.not_reached("bench"):
            run_bench(check)
        if "notebooks" in args.steps and not check.not_reached("notebooks"):
            run_notebooks(check)
    except Exception as err:  # keep what was measured, and say what broke
        check.save(error=f"{type(err).__name__}: {err}")
        raise
    finally:
        check.save(finished=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    ran = ["data"] if {"bench", "notebooks"} & set(args.steps) else []
    statuses = [check.record.get(s, {}).get("status") for s in (*ran, *args.steps)]
    check.save(complete=all(s == "ok" for s in statuses))
    print("\n" + "\n".join(summary_lines(check.record)))
    print(f"figures: {check.json_path}")
    return 0 if check.record["complete"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
