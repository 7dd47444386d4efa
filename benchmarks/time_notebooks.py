"""Time every notebook top to bottom in a fresh kernel, and write the table the website shows.

Run with ``make timings`` (quick profile) or ``make timings PROFILE=cpu``. Each notebook runs
in its own fresh kernel, as a learner's "Restart and run all" does; the wall time includes the
kernel start. It writes ``book/timings/<profile>.md`` (included by the run-profiles page) and
``book/timings/<profile>.json``. It measures; it asserts nothing.

Example:
    .venv/bin/python benchmarks/time_notebooks.py --profile cpu notebooks/03_source_model.ipynb
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import time
from pathlib import Path

import nbclient
import nbformat
import torch

import tlcourse as tl

REPO = Path(__file__).resolve().parents[1]


def run_notebook(path: Path, timeout: int) -> tuple[str, float]:
    """Execute ``path`` in a fresh kernel in the notebooks folder.

    Returns its title (the first heading up to the colon, e.g. '3 · The source model') and
    the wall seconds.
    """
    nb = nbformat.read(path, as_version=4)
    title = nb.cells[0].source.splitlines()[0].lstrip("# ").strip().split(":")[0]
    t0 = time.perf_counter()
    nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    return title, time.perf_counter() - t0


def fmt(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 100 else f"{seconds // 60:.0f} min {seconds % 60:02.0f} s"


def write(out: Path, profile: str, rows: list[dict], standins: bool, threads: str, device: torch.device,
          gpu: str | None) -> None:
    """Write ``<profile>.json`` and the Markdown table ``<profile>.md`` (after every notebook, so a failure keeps the rest)."""
    total = sum(r["seconds"] for r in rows)
    record = {
        "profile": profile, "standins": standins, "device": str(device), "gpu": gpu,
        "cpu_cores": os.cpu_count(), "torch_threads": threads, "machine": platform.machine(),
        "torch": torch.__version__, "date": dt.date.today().isoformat(), "rows": rows, "total_seconds": round(total, 1),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{profile}.json").write_text(json.dumps(record, indent=1) + "\n")
    where = gpu or f"CPU, {os.cpu_count()} cores, {threads} PyTorch thread(s)"
    data = "generated stand-in data" if standins else "the real datasets"
    lines = [f"Profile `{profile}`, measured on {record['date']} on {where}, with {data}; "
             "each notebook in a fresh kernel, kernel start included "
             "(written by `benchmarks/time_notebooks.py`).", "",
             "| chapter | wall time |", "|---|---|"]
    lines += [f"| {r['title']} | {fmt(r['seconds'])} |" for r in rows]
    lines += [f"| **all {len(rows)}** | **{fmt(total)}** |", ""]
    (out / f"{profile}.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/*.ipynb")
    parser.add_argument("--profile", default=os.environ.get(tl.PROFILE_ENV, "quick"), choices=sorted(tl.PROFILES))
    parser.add_argument("--out", type=Path, default=REPO / "book" / "timings")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args(argv)

    os.environ[tl.PROFILE_ENV] = args.profile
    paths = args.notebooks or sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    standins = tl.using_standins()
    threads = os.environ.get("OMP_NUM_THREADS", str(torch.get_num_threads()))
    device = tl.choose_device(tl.get_profile(args.profile).device)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    # Timing some notebooks updates their rows and keeps the others' (same profile, same file).
    previous = args.out / f"{args.profile}.json"
    kept = ({r["notebook"]: r for r in json.loads(previous.read_text())["rows"]}
            if args.notebooks and previous.exists() else {})
    for path in paths:
        title, seconds = run_notebook(path.resolve(), args.timeout)
        kept[path.stem] = {"notebook": path.stem, "title": title, "seconds": round(seconds, 1)}
        print(f"{path.stem:24s} {fmt(seconds):>12s}", flush=True)
        write(args.out, args.profile, [kept[k] for k in sorted(kept)], standins, threads, device, gpu)
    print(f"wrote {args.out / (args.profile + '.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
