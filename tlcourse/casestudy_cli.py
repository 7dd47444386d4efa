"""The command line ``python -m tlcourse casestudy``: everything checked first, saved after every run.

Usage (``python -m tlcourse casestudy --help``)::

    python -m tlcourse casestudy --profile {quick,cpu,full} [--out DIR] [--budgets 10,100,all]
                                 [--seeds 0,1,2] [--arms scratch,finetune,frozen] [--device auto]
                                 [--retrain-source] [--quiet]

Before any training it checks the arguments (a bad one exits with status 2 and a
message), the device, the data, that the output and checkpoint folders can be written,
and that an earlier ``results.json`` in ``--out`` was made by the same study (one made
with other settings is refused, never overwritten: ``tlcourse.results.reusable_runs``).
Other failures to start exit with status 1 and one line.

``results.json`` is rewritten (atomically) after every finished run, and the source
model's training is saved every epoch. Ctrl-C stops with one line saying what was kept
and the command that resumes (exit status 130); running that command again computes
only the runs that are missing. At the end it writes ``results.json``,
``accuracy_vs_labels.png`` and ``source_history.png`` to ``--out`` (default
``results/casestudy-<profile>-<standin|real>/``); the schema is in ``tlcourse.results``.

Example (the message goes to stderr: ``--arms: unknown arm 'fintune' (did you mean 'finetune'?)``):
    >>> main(["--profile", "quick", "--arms", "scratch,fintune"])
    Traceback (most recent call last):
    ...
    SystemExit: 2
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

import torch

from .arms import ARMS, cifar_tensors
from .casestudy import _arm_problem, run_case_study
from .config import PROFILES, choose_device, get_profile
from .data import DataUnavailableError
from .files import OutputNotWritableError, atomic_write, ensure_writable, remove_stale_temporaries
from .casestudy_report import case_study_comparisons, plot_results, results_table
from .results import RESULTS_ENV, ResultsConflictError, default_results_path, reusable_runs, write_results
from .session import dataset_title
from .sources import SourceInterrupted
from .train import History

__all__ = ["main"]

INTERRUPTED = 130  # the exit status of a program stopped by Ctrl-C (128 + SIGINT)


def _parse_list(text: str, what: str, parser: argparse.ArgumentParser, *, allow_all: bool = False) -> list:
    """Comma-separated whole numbers (or ``all``), without repeats; anything else is a usage error."""
    if not text.strip():
        parser.error(f"{what} is empty: give comma-separated whole numbers{', or all' if allow_all else ''} "
                     f"(or leave {what} out for the profile's)")
    out: list[int | str] = []
    for item in (t.strip() for t in text.split(",")):
        if allow_all and item.lower() == "all":
            out.append("all")
            continue
        try:
            value = int(item)
        except ValueError:
            parser.error(f"{what} must be whole numbers separated by commas{' (or all)' if allow_all else ''}; "
                         f"got {item!r} in {text!r}")
        if what == "--budgets" and value <= 0:
            parser.error(f"--budgets: a label budget is a number of images per class and must be positive; got {value}")
        if what == "--seeds" and value < 0:
            parser.error(f"--seeds must not be negative; got {value}")
        out.append(value)
    return list(dict.fromkeys(out))  # without repeats, in the order given


def _parse_arms(text: str, parser: argparse.ArgumentParser) -> list[str]:
    arms = [a.strip() for a in text.split(",") if a.strip()]
    if not arms:
        parser.error(f"--arms is empty: choose from {', '.join(ARMS)}")
    if _arm_problem(arms):
        parser.error(f"--arms: {_arm_problem(arms)}")
    return list(dict.fromkeys(arms))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tlcourse casestudy",
        description="Run the MNIST -> CIFAR-10 case study (source model, then every arm x label budget x seed) "
                    "and write results.json and plots. An interrupted study resumes when run again.",
        epilog="Data follow TLCOURSE_DATA / TLCOURSE_STANDIN, checkpoints TLCOURSE_CHECKPOINTS. "
               "Example: python -m tlcourse casestudy --profile cpu --budgets 10,100,all --seeds 0,1,2")
    p.add_argument("--profile", choices=sorted(PROFILES), default=None,
                   help="run profile (default: $TLCOURSE_PROFILE, else full with CUDA, else cpu)")
    p.add_argument("--out", type=Path, default=None,
                   help="output directory (default: results/casestudy-<profile>-<standin|real>/)")
    p.add_argument("--budgets", default=None,
                   help="labelled images per class, comma-separated; 'all' = every label "
                        "(default: the profile's budgets, then all)")
    p.add_argument("--seeds", default=None, help="seeds, comma-separated (default: the profile's)")
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {', '.join(ARMS)}")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:1, mps (default: the profile's)")
    p.add_argument("--retrain-source", action="store_true", help="train the source model even if its checkpoint exists")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    return p


def _write_outputs(out: Path, results: dict[str, Any]) -> None:
    """The plots, each written atomically; then the summary on the terminal."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no window
    fig = plot_results(results)
    atomic_write(out / "accuracy_vs_labels.png", lambda f: fig.savefig(f, format="png", dpi=120))
    if results["metadata"]["source"] is not None:
        history = History.from_dict(results["metadata"]["source"]["history"])
        fig = history.plot(title=f"source model on {dataset_title('mnist')}")
        atomic_write(out / "source_history.png", lambda f: fig.savefig(f, format="png", dpi=120))
    print(results_table(results).to_string())
    arms = results["metadata"]["arms"]
    for arm in [a for a in arms if a != "scratch"] if "scratch" in arms else []:
        for budget, comparison in case_study_comparisons(results, arm=arm).items():
            print(f"{'all labels' if budget == 'all' else budget + ' labels per class'}: {comparison}")
    t = results["metadata"]["timings"]
    print(f"wrote {out / 'results.json'} and plots; wall time {t['total_s']:.1f} s "
          f"(source {t['source_s']:.1f} s, target runs {t['target_s']:.1f} s)")


def main(argv: list[str] | None = None) -> int:
    """``python -m tlcourse casestudy``: run (or resume) the case study, write ``results.json`` and PNG plots."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        profile = get_profile(args.profile)  # None: $TLCOURSE_PROFILE, else the machine's default
    except ValueError as err:  # a bad TLCOURSE_PROFILE
        parser.error(str(err))
    budgets = _parse_list(args.budgets, "--budgets", parser, allow_all=True) if args.budgets is not None else None
    seeds = _parse_list(args.seeds, "--seeds", parser) if args.seeds is not None else None
    arms = _parse_arms(args.arms, parser)
    try:
        device = choose_device(args.device or profile.device)
    except RuntimeError as err:
        parser.error(f"--device: {err}")
    out = args.out if args.out is not None else default_results_path(profile).parent
    path = out / "results.json"
    kept = {"runs": 0}

    def resume(planned: dict[str, Any]) -> list[dict[str, Any]]:
        runs = reusable_runs(path, planned=planned)
        kept["runs"] = len(runs)
        return runs

    def save(results: dict[str, Any]) -> None:
        write_results(path, results)
        kept["runs"] = len(results["runs"])

    try:
        data = cifar_tensors(profile, train=True), cifar_tensors(profile, train=False)
        most = int(torch.bincount(data[0][1]).min())
        too_big = [b for b in (budgets or profile.label_budgets) if b != "all" and b > most]
        if too_big:
            parser.error(f"--budgets: {too_big} per class is more than the training data has (the smallest class "
                         f"has {most} images in profile {profile.name}); use at most {most}, or 'all'")
        ensure_writable(out, what="the results", env=None if args.out is not None else RESULTS_ENV)
        remove_stale_temporaries(path)  # train_source checks its own folder before it trains
        print(f"case study: profile {profile.name}, device {device}, data {dataset_title('mnist')} -> "
              f"{dataset_title('cifar10')}, output {out}")
        results = run_case_study(profile, device, budgets=budgets, seeds=seeds, arms=arms,
                                 retrain_source=args.retrain_source, log=None if args.quiet else print,
                                 data=data, resume=resume, on_progress=save)
        save(results)
        _write_outputs(out, results)
    except (DataUnavailableError, OutputNotWritableError, ResultsConflictError) as err:
        print(f"error: {err}", file=sys.stderr)  # each says what to do; nothing was trained
        return 1
    except KeyboardInterrupt as err:
        source = f"{err.kept} and " if isinstance(err, SourceInterrupted) else ""
        n = kept["runs"]
        runs = f"{n} finished run{'' if n == 1 else 's'} in {path}" if n else "no finished run (none had ended)"
        command = shlex.join(["python", "-m", "tlcourse", "casestudy", *argv])
        print(f"Interrupted: kept {source}{runs}; to resume, run: {command}", file=sys.stderr)
        return INTERRUPTED
    return 0
