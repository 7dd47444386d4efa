"""Time every notebook top to bottom in a fresh kernel, and write what the website shows.

Run with ``make timings`` (quick profile) or ``make timings PROFILE=cpu``. Each notebook runs
in its own fresh kernel, as a learner's "Restart and run all" does; the wall time includes the
kernel start. It writes ``book/timings/<profile>.json`` and the table ``<profile>.md``
(included by the run-profiles page), and then the line at the top of each notebook that says
how long that chapter takes in each timed profile, between the TIMING_START and TIMING_END
markers, from those JSON files: the numbers on the pages always come from a measurement.
``--stamp-only`` rewrites those lines from the JSON files without running anything.
``--from-book-cache`` runs nothing either: it takes the times from the execution records of
the last ``make book`` (jupyter-cache runs each notebook in a fresh kernel too), so that the
website's outputs and its timings come from one run. It measures; it asserts nothing.

Example:
    .venv/bin/python benchmarks/time_notebooks.py --profile cpu notebooks/03_source_model.ipynb
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import time
from pathlib import Path

import nbclient
import nbformat
import torch

import tlcourse as tl

__all__ = ["TIMING_END", "TIMING_START", "fmt", "stamp_notebooks", "timing_block"]

REPO = Path(__file__).resolve().parents[1]
TIMINGS = REPO / "book" / "timings"
TIMING_START = "<!-- timings: written by benchmarks/time_notebooks.py from book/timings -->"
TIMING_END = "<!-- /timings -->"
PROFILES_PAGE = "../book/profiles.md#how-long-they-take"  # relative to notebooks/


def run_notebook(path: Path, timeout: int) -> tuple[str, float]:
    """Execute ``path`` in a fresh kernel in the notebooks folder.

    Returns its title (the first heading up to the colon, e.g. '3 · The source model') and
    the wall seconds.
    """
    nb = nbformat.read(path, as_version=4)
    title = title_of(nb)
    t0 = time.perf_counter()
    nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    return title, time.perf_counter() - t0


def fmt(seconds: float) -> str:
    """Seconds as a reader says them: '13 s', or '4 min 56 s' from 100 s on."""
    return f"{seconds:.0f} s" if seconds < 100 else f"{seconds // 60:.0f} min {seconds % 60:02.0f} s"


def _where(record: dict) -> str:
    return record["gpu"] or f"{record['cpu_cores']} CPU cores"


def datasets_used(path: Path) -> list[str]:
    """The datasets a chapter's ``tl.start(..., datasets=[...])`` names (all of them without it)."""
    code = "".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    call = re.search(r"tl\.start\(([^)]*)\)", code)
    named = re.search(r"datasets=\[([^\]]*)\]", call.group(1)) if call else None
    return re.findall(r"\"(\w+)\"", named.group(1)) if named else list(tl.DATASETS)


def timing_block(stem: str, *, records: dict[str, dict], uses: list[str] | None = None) -> str | None:
    """The lines (markers included) that open notebook ``stem``: its time in each profile.

    Args:
        stem: the notebook's name without ``.ipynb``, e.g. ``03_source_model``.
        records: the contents of ``book/timings/<profile>.json``, by profile name.
        uses: the datasets the notebook uses (``datasets_used``): a stand-in of another
            dataset is not named in its line. None: all of them.

    Returns None when no record has a row for the notebook.
    """
    parts, machines, standins = [], set(), set()
    order = list(tl.PROFILES)  # quick, cpu, full
    for profile in sorted(records, key=lambda p: order.index(p) if p in order else len(order)):
        record = records[profile]
        row = next((r for r in record["rows"] if r["notebook"] == stem), None)
        if row is None:
            continue
        parts.append(f"{fmt(row['seconds'])} in the `{profile}` profile")
        machines.add(_where(record))
        used = record["standins"]
        if uses is not None and isinstance(used, list):
            used = [n for n in used if n in uses]
        standins.add(_data_words(used))
    if not parts:
        return None
    times = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    where = " / ".join(sorted(machines))
    data = standins.pop() if len(standins) == 1 else "different data in each profile"
    line = (f"**Time to run:** {times}, top to bottom on {where} with {data} "
            f"([measured by `make timings`]({PROFILES_PAGE})).")
    return "\n".join([TIMING_START, line, TIMING_END])


def _with_block(source: str, block: str) -> str:
    """``source`` (a notebook's opening Markdown) with ``block`` in place of the old one.

    A source without a block gets it after its first line, the chapter's title.
    """
    if TIMING_START in source and TIMING_END in source:
        head, rest = source.split(TIMING_START, 1)
        return head + block + rest.split(TIMING_END, 1)[1]
    title, _, body = source.partition("\n")
    return f"{title}\n\n{block}\n{body}" if body else f"{title}\n\n{block}"


def stamp_notebooks(paths: list[Path], *, timings: Path = TIMINGS) -> list[Path]:
    """Write each notebook's timing line from ``timings/*.json``; return the notebooks changed.

    Args:
        paths: the notebooks to update (their outputs are left as they are: none).
        timings: the folder holding ``<profile>.json`` as this script writes them.
    """
    records = {p.stem: json.loads(p.read_text()) for p in sorted(timings.glob("*.json"))}
    changed = []
    for path in paths:
        block = timing_block(path.stem, records=records, uses=datasets_used(path))
        nb = nbformat.read(path, as_version=4)
        opening = nb.cells[0]
        if block is None or opening.cell_type != "markdown":
            continue
        new = _with_block(opening.source, block)
        if new != opening.source:
            opening.source = new
            path.write_text(nbformat.writes(nb) + "\n")
            changed.append(path)
    return changed


def _data_words(standins: bool | list[str]) -> str:
    """What a timing record ran on, in words: its list of stand-in datasets (older records: a bool)."""
    if standins is True or (standins and set(standins) >= set(tl.DATASETS)):
        return "stand-in data"
    if not standins:
        return "the real data"
    return f"the real data, with a {' and a '.join(tl.DATASET_TITLES[n] for n in standins)} stand-in"


def title_of(nb: nbformat.NotebookNode) -> str:
    """A chapter's title: its first heading up to the colon, e.g. '3 · The source model'."""
    return nb.cells[0].source.splitlines()[0].lstrip("# ").strip().split(":")[0]


def book_cache_rows(cache: Path, paths: list[Path]) -> list[dict]:
    """One row per notebook from jupyter-cache's execution records (the book build's own runs).

    Raises:
        SystemExit: no record matches a notebook's code (``make book`` has not run it since it
            changed): run ``make book`` first.
    """
    from jupyter_cache import get_cache

    store = get_cache(str(cache))
    rows = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        try:  # the record of this very code: jupyter-cache matches on the code cells' hash
            record = store.match_cache_notebook(nb)
        except KeyError:
            record = None
        seconds = (record.data or {}).get("execution_seconds") if record else None
        if seconds is None:
            raise SystemExit(f"error: {cache} has no execution of {path.name} as it is now: run `make book` first")
        rows.append({"notebook": path.stem, "title": title_of(nb), "seconds": round(seconds, 1)})
    return rows


def write(out: Path, profile: str, rows: list[dict], standins: list[str], threads: str, device: torch.device,
          gpu: str | None, *, how: str = "each notebook in a fresh kernel, kernel start included") -> None:
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
    data = _data_words(standins)
    lines = [f"Profile `{profile}`, measured on {record['date']} on {where}, with {data}; "
             f"{how} (written by `benchmarks/time_notebooks.py`).", "",
             "| chapter | wall time |", "|---|---|"]
    lines += [f"| {r['title']} | {fmt(r['seconds'])} |" for r in rows]
    lines += [f"| **all {len(rows)}** | **{fmt(total)}** |", ""]
    (out / f"{profile}.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/*.ipynb")
    parser.add_argument("--profile", default=os.environ.get(tl.PROFILE_ENV, "quick"), choices=sorted(tl.PROFILES))
    parser.add_argument("--out", type=Path, default=TIMINGS)
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("--stamp-only", action="store_true",
                        help="only rewrite each notebook's timing line from the JSON files in --out")
    parser.add_argument("--from-book-cache", type=Path, metavar="CACHE",
                        help="take the times from the book build's jupyter-cache (book/_build/.jupyter_cache); "
                             "run with the environment that build had")
    args = parser.parse_args(argv)

    every = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.stamp_only:
        for path in stamp_notebooks(every, timings=args.out):
            print(f"updated the timing line of {path.name}")
        return 0

    os.environ[tl.PROFILE_ENV] = args.profile
    paths = args.notebooks or every
    standins = sorted(tl.standin_datasets())
    threads = os.environ.get("OMP_NUM_THREADS", str(torch.get_num_threads()))
    device = tl.choose_device(tl.get_profile(args.profile).device)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    # Timing some notebooks updates their rows and keeps the others' (same profile, same file).
    previous = args.out / f"{args.profile}.json"
    kept = ({r["notebook"]: r for r in json.loads(previous.read_text())["rows"]}
            if args.notebooks and previous.exists() else {})
    if args.from_book_cache:
        rows = book_cache_rows(args.from_book_cache, paths)
        write(args.out, args.profile, rows, standins, threads, device, gpu,
              how="each notebook as `make book` executed it, in a fresh kernel (jupyter-cache's record)")
        for row in rows:
            print(f"{row['notebook']:24s} {fmt(row['seconds']):>12s}")
        paths = []
    for path in paths:
        title, seconds = run_notebook(path.resolve(), args.timeout)
        kept[path.stem] = {"notebook": path.stem, "title": title, "seconds": round(seconds, 1)}
        print(f"{path.stem:24s} {fmt(seconds):>12s}", flush=True)
        write(args.out, args.profile, [kept[k] for k in sorted(kept)], standins, threads, device, gpu)
    print(f"wrote {args.out / (args.profile + '.md')}")
    if args.out.resolve() == TIMINGS.resolve():  # the website's numbers: update the chapters too
        for path in stamp_notebooks(every, timings=args.out):
            print(f"updated the timing line of {path.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
