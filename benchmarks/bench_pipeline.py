"""Benchmark: the document's data pipeline against tlcourse's, and the whole LeNet case study.

Run with ``make bench`` (it sets TLCOURSE_PROFILE=cpu and TLCOURSE_STANDIN=1 unless they
are set), or ``python benchmarks/bench_pipeline.py [--device cuda] [--json bench.json]``.
It prints numbers (and, with ``--json``, writes them to one file after every section, so
a run stopped part-way keeps what it measured); it is not a test and asserts nothing.

1. One training epoch of LeNet, batch 100, the same model, optimiser and device, with
   two pipelines, interleaved (A B A B ...), median of the reps; once on the digits
   (1x28x28, the document's own setting) and once on CIFAR-10 (3x32x32):

   - A, the document's: PIL images -> ``ToTensor`` -> ``DataLoader(num_workers=2)``
     (``tl.classic_loader``), moved to the device batch by batch;
   - B, tlcourse's: the whole dataset converted once and kept on the device, batches
     sliced from it (``tl.DeviceLoader``).

   Then the same epochs of B with an explicit device synchronisation after every step:
   steps per second with and without it show whether the loop ever lets the host run
   ahead of the GPU (on the CPU there is nothing to synchronise and both agree).

2. The wall time of the whole case study, once per ``--epochs SxT`` (default: the
   profile's): source training on the digits (S epochs), fine-tuning on CIFAR-10 with
   all labels (T epochs), test accuracy. Next to it, an estimate of the same study with
   the document's pipeline: S document digit epochs + T document CIFAR-10 epochs, as
   measured in 1 (training passes only, so the estimate is low rather than high).

Without the real datasets it uses stand-ins at the real datasets' sizes (``--digits``
60,000 digits and ``--cifar`` 50,000 CIFAR-10 training images by default) and says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import itertools
import json
import os
import platform
import statistics
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
import torchvision

import tlcourse as tl

SCHEMA = "tlcourse-bench-pipeline-v1"
DOCUMENT = "document (ToTensor + DataLoader, 2 workers)"
DEVICE = "tlcourse (DeviceLoader, data on the device)"
WARMUP_STEPS = 20  # untimed steps of each pipeline first: worker start, CUDA/cuDNN initialisation


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op off CUDA, where nothing runs ahead of the host)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def machine(device: torch.device) -> dict[str, Any]:
    """What the numbers were measured on."""
    cuda = device.type == "cuda"
    return {
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if cuda else None,
        "gpu_capability": ".".join(map(str, torch.cuda.get_device_capability(device))) if cuda else None,
        "bf16": bool(torch.cuda.is_bf16_supported()) if cuda else None,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "python": platform.python_version(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_before": load_average(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


class Record:
    """The figures measured so far; written (atomically) to ``path`` after every section."""

    def __init__(self, path: Path | None, **fields: Any) -> None:
        self.path, self.data = path, {"schema": SCHEMA, "complete": False, **fields}

    def save(self, **fields: Any) -> None:
        self.data.update(fields)
        if self.path is not None:
            tl.atomic_write_text(self.path, json.dumps(self.data, indent=1) + "\n")


class SyncEachStep:
    """The batches of ``loader``, with a device synchronisation before each next batch (after each step)."""

    def __init__(self, loader: Iterable, device: torch.device) -> None:
        self.loader, self.device = loader, device

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator:
        for batch in self.loader:
            yield batch
            synchronize(self.device)  # runs when the loop asks for the next batch: the step is queued


def train_epoch_seconds(loader: Iterable, device: torch.device, *, in_channels: int, image_size: int,
                        seed: int) -> tuple[float, int]:
    """One epoch of a freshly seeded LeNet over ``loader``: (wall seconds, steps); the loss read syncs the device."""
    tl.seed_everything(seed)
    model = tl.LeNet(in_channels=in_channels, image_size=image_size).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    synchronize(device)
    t0 = time.perf_counter()
    tl.train_one_epoch(model, loader, opt, device, progress=False)
    return time.perf_counter() - t0, len(loader)


def warm_up(loader: Iterable, device: torch.device, *, in_channels: int, image_size: int) -> None:
    """A few untimed steps: starts the workers, loads the CUDA kernels and picks the convolution algorithms."""
    model = tl.LeNet(in_channels=in_channels, image_size=image_size).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    tl.train_one_epoch(model, list(itertools.islice(iter(loader), WARMUP_STEPS)), opt, device, progress=False)


def data_seconds(loader: Iterable, device: torch.device) -> float:
    """One pass over ``loader`` without a model: the cost of the pipeline alone."""
    t0 = time.perf_counter()
    total = torch.zeros((), device=device)
    for x, _ in loader:
        total += x.to(device, non_blocking=True).sum()
    total.item()
    return time.perf_counter() - t0


def summary(times: list[float], images: int) -> dict[str, Any]:
    med = statistics.median(times)
    return {"epoch_s": [round(t, 4) for t in times], "median_s": round(med, 4), "images_per_s": round(images / med)}


def pipelines(args: argparse.Namespace, sized: tl.Profile, device: torch.device,
              record: Record) -> tuple[dict[str, Any], tl.DeviceLoader]:
    """Section 1: the document's pipeline against the device-resident one, digits and CIFAR-10.

    Returns the figures and the device-resident digit loader (section 1b reuses it).
    """
    cases = {}
    for name, count, shape in (("mnist", args.digits, (1, 28)), ("cifar10", args.cifar, (3, 32))):
        classic = tl.classic_loader(name, train=True, batch_size=args.batch_size, num_workers=2, limit=count,
                                    profile=sized)
        x, y = tl.dataset_tensors(tl.load_dataset(name, train=True, profile=sized))
        x, y = x[:count], y[:count]
        synchronize(device)
        t0 = time.perf_counter()
        mean, std = tl.channel_stats(x)
        resident = tl.DeviceLoader(x, y, batch_size=args.batch_size, device=device, mean=mean, std=std)
        synchronize(device)
        setup = time.perf_counter() - t0
        cases[name] = {"images": len(y), "shape": shape, "loaders": {DOCUMENT: classic, DEVICE: resident},
                       "setup_s": setup}
    for case in cases.values():
        for loader in case["loaders"].values():
            warm_up(loader, device, in_channels=case["shape"][0], image_size=case["shape"][1])
    print(f"\n1) one LeNet training epoch, batch {args.batch_size}, {args.reps} reps interleaved "
          f"({WARMUP_STEPS} untimed warm-up steps of each pipeline first)")
    times = {(name, p): [] for name, case in cases.items() for p in case["loaders"]}
    for rep in range(args.reps):
        for name, case in cases.items():
            for p, loader in case["loaders"].items():
                seconds, _ = train_epoch_seconds(loader, device, in_channels=case["shape"][0],
                                                 image_size=case["shape"][1], seed=rep)
                times[name, p].append(seconds)
                print(f"   rep {rep + 1} {name:8s} {p:45s} {seconds:7.2f} s", flush=True)
    data_only = {key: [] for key in times}
    for _ in range(args.reps):
        for name, case in cases.items():
            for p, loader in case["loaders"].items():
                data_only[name, p].append(data_seconds(loader, device))
    out: dict[str, Any] = {}
    for name, case in cases.items():
        n = case["images"]
        doc, ours = summary(times[name, DOCUMENT], n), summary(times[name, DEVICE], n)
        doc["data_pass_median_s"] = round(statistics.median(data_only[name, DOCUMENT]), 4)
        ours["data_pass_median_s"] = round(statistics.median(data_only[name, DEVICE]), 4)
        ours["setup_s"] = round(case["setup_s"], 4)  # one-time conversion + upload
        ratio = doc["median_s"] / ours["median_s"]
        channels, side = case["shape"]
        out[name] = {"images": n, "input": f"{channels}x{side}x{side}", "document": doc, "device_resident": ours,
                     "ratio": round(ratio, 2)}
        for label, s in ((DOCUMENT, doc), (DEVICE, ours)):
            print(f"   {name:8s} {label:45s} median {s['median_s']:7.2f} s/epoch {s['images_per_s']:9,d} images/s "
                  f"(data pass alone: {s['data_pass_median_s']:.2f} s)")
        print(f"   {name:8s} ratio: tlcourse is {ratio:.2f}x faster per epoch than the document's pipeline "
              f"({n:,} images; one-time conversion + upload {case['setup_s']:.2f} s)")
    record.save(pipeline=out)
    return out, cases["mnist"]["loaders"][DEVICE]


def sync_cost(args: argparse.Namespace, resident: tl.DeviceLoader, device: torch.device,
              record: Record) -> None:
    """Section 1b: steps per second of the device-resident epoch, with and without a sync after every step."""
    rates: dict[str, list[float]] = {"plain": [], "sync_each_step": []}
    for rep in range(args.reps):
        for kind, loader in (("plain", resident), ("sync_each_step", SyncEachStep(resident, device))):
            seconds, steps = train_epoch_seconds(loader, device, in_channels=1, image_size=28, seed=rep)
            rates[kind].append(steps / seconds)
    plain, synced = statistics.median(rates["plain"]), statistics.median(rates["sync_each_step"])
    what = "torch.cuda.synchronize() after every step" if device.type == "cuda" else "none: nothing to wait for on the CPU"
    record.save(sync={"steps_per_epoch": len(resident), "steps_per_s": round(plain, 1),
                      "steps_per_s_with_sync": round(synced, 1), "slowdown_with_sync": round(plain / synced, 3),
                      "explicit_sync": what})
    print(f"   sync: {plain:,.0f} steps/s as the loop runs, {synced:,.0f} steps/s with {what} "
          f"({plain / synced:.2f}x)")


def case_study(args: argparse.Namespace, sized: tl.Profile, device: torch.device, pipeline: dict[str, Any],
               record: Record) -> None:
    """Section 2: the whole case study (source, fine-tuning with all labels, evaluation), per ``--epochs``."""
    rows = []
    for source_epochs, target_epochs in args.epochs:
        profile = dataclasses.replace(sized, source_epochs=source_epochs, target_epochs=target_epochs)
        settings = tl.CaseStudySettings.for_profile(profile)
        print(f"\n2) the whole LeNet case study, profile {profile.name}: {source_epochs} source epochs + "
              f"{target_epochs} target epochs (all labels) + evaluation")
        synchronize(device)
        t0 = time.perf_counter()
        src = tl.train_source("mnist", profile=profile, device=device, in_channels=3, image_size=32,
                              cache=False)
        source, history = src.model, src.history
        t1 = time.perf_counter()
        train, test = tl.cifar_tensors(profile, train=True), tl.cifar_tensors(profile, train=False)
        train = train[0][:args.cifar], train[1][:args.cifar]
        row = tl.run_arm("finetune", source, train, test, budget=None, seed=0, profile=profile, device=device,
                         settings=settings)
        synchronize(device)
        t2 = time.perf_counter()
        estimate = (source_epochs * pipeline["mnist"]["document"]["median_s"]
                    + target_epochs * pipeline["cifar10"]["document"]["median_s"])
        rows.append({
            "source_epochs": source_epochs, "target_epochs": target_epochs, "batch_size": profile.batch_size,
            "source_s": round(t1 - t0, 3), "target_s": round(t2 - t1, 3), "total_s": round(t2 - t0, 3),
            "source_test_acc": history.test_acc[-1], "target_test_acc": row["test_acc"],
            "target_steps": row["steps"], "target_images": row["labels"], "test_images": len(test[1]),
            "document_estimate_s": round(estimate, 2), "ratio_estimate": round(estimate / (t2 - t0), 2),
        })
        record.save(case_study=rows)
        print(f"   source: {history.epochs} epochs on 3x32x32 digits, {t1 - t0:.1f} s "
              f"(test accuracy {history.test_acc[-1]:.1%})")
        print(f"   target: {row['steps']} steps ({row['epochs']:g} epochs) on {row['labels']:,} CIFAR-10 images + "
              f"test on {len(test[1]):,}, {t2 - t1:.1f} s (test accuracy {row['test_acc']:.1%})")
        print(f"   whole case study: {t2 - t0:.2f} s wall time; with the document's pipeline at least "
              f"~{estimate:.0f} s (estimated from the epochs in 1), about {estimate / (t2 - t0):.0f}x longer")


def epochs_pair(text: str) -> tuple[int, int]:
    """``10x30`` -> (10, 30)."""
    try:
        s, t = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--epochs takes SOURCExTARGET, e.g. 10x30; got {text!r}") from None
    if s < 1 or t < 1:
        raise argparse.ArgumentTypeError(f"--epochs: both epoch counts must be at least 1; got {text!r}")
    return s, t


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default=None, choices=sorted(tl.PROFILES),
                        help="run profile of the case study (default: $TLCOURSE_PROFILE, else full with CUDA, else cpu)")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda, ... (default: the profile's)")
    parser.add_argument("--reps", type=int, default=3, help="epochs per pipeline (at least 2; median reported)")
    parser.add_argument("--digits", type=int, default=60_000, help="digits (MNIST training images) used")
    parser.add_argument("--cifar", type=int, default=50_000, help="CIFAR-10 training images used")
    parser.add_argument("--test-images", type=int, default=10_000, help="test images of each stand-in")
    parser.add_argument("--batch-size", type=int, default=100, help="batch of the pipeline comparison (the document's)")
    parser.add_argument("--epochs", type=epochs_pair, action="append", default=None, metavar="SxT",
                        help="source x target epochs of a case-study run; repeat for several (default: the profile's)")
    parser.add_argument("--skip-case-study", action="store_true", help="only the pipeline comparison")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this JSON file")
    args = parser.parse_args(argv)
    if args.reps < 2:
        parser.error("--reps must be at least 2")
    for name in ("digits", "cifar", "test_images", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.cifar > args.digits:
        parser.error("--cifar must not exceed --digits (the stand-ins are made at --digits images each)")
    if args.json is not None:
        tl.ensure_writable(args.json.resolve().parent, what="the benchmark's JSON file")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    profile = tl.get_profile(args.profile)
    device = tl.choose_device(args.device or profile.device)
    args.epochs = args.epochs or [(profile.source_epochs, profile.target_epochs)]
    # Stand-ins at --digits images per dataset (MNIST's 60,000 by default); CIFAR-10 is cut to --cifar.
    sized = dataclasses.replace(profile, standin_train=args.digits, standin_test=args.test_images,
                                train_size=args.digits, test_size=None)
    standins = tl.using_standins()
    info = machine(device)
    record = Record(args.json, **info, standins=standins, profile=profile.name, digits=args.digits, cifar=args.cifar,
                    batch_size=args.batch_size, reps=args.reps)
    record.save()
    print(f"device {device}{' (' + info['gpu'] + ')' if info['gpu'] else ''}, torch {torch.__version__} "
          f"(CUDA {torch.version.cuda}), {torch.get_num_threads()} CPU threads, {os.cpu_count()} cores, "
          f"load average {info['load_average_before']}")
    print("data: " + (f"STAND-INS, {args.digits:,} digits and {args.cifar:,} CIFAR-10 training images (no real data "
                      "in use; set TLCOURSE_STANDIN=0 with the real data in place to measure on it)"
                      if standins else f"real, in {tl.data_dir()}"))
    pipeline, resident_digits = pipelines(args, sized, device, record)
    sync_cost(args, resident_digits, device, record)
    if not args.skip_case_study:
        case_study(args, sized, device, pipeline, record)
    record.save(complete=True, load_average_after=load_average())
    print(f"\nload average after: {load_average()} (other processes on the same cores inflate every number above)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
