"""Benchmark: the document's data pipeline against tlcourse's, and the whole LeNet case study.

Run with ``make bench`` (it sets TLCOURSE_PROFILE=cpu and TLCOURSE_STANDIN=1 unless they
are set), or ``.venv/bin/python benchmarks/bench_pipeline.py [--reps 3] [--device cuda]``.
It prints numbers; it is not a test and asserts nothing.

1. One training epoch of LeNet on all MNIST training images, batch 100, the same model,
   optimiser and device, with two pipelines, interleaved (A B A B ...), median of the reps:

   - A, the document's: PIL images -> ``ToTensor`` -> ``DataLoader(num_workers=2)``
     (``tl.classic_loader``), moved to the device batch by batch;
   - B, tlcourse's: the whole dataset converted once and kept on the device, batches
     sliced from it (``tl.DeviceLoader``).

2. The wall time of the whole case study with the profile's epochs (``cpu``: 10 source
   epochs on the digits, 10 target epochs on CIFAR-10, evaluation): data loading,
   source training, fine-tuning with all labels, test accuracy.

Without the real datasets it uses stand-ins at the real datasets' sizes (60,000 digits,
50,000 CIFAR-10 training images) and says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

import tlcourse as tl


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def epoch_seconds(loader, device: torch.device, seed: int) -> float:
    """One training epoch of a freshly seeded LeNet over ``loader``; wall seconds (the loss read syncs the device)."""
    tl.seed_everything(seed)
    model = tl.LeNet(in_channels=1, image_size=28).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    t0 = time.perf_counter()
    tl.train_one_epoch(model, loader, opt, device, progress=False)
    return time.perf_counter() - t0


def data_seconds(loader, device: torch.device) -> float:
    """One pass over ``loader`` without a model: the cost of the pipeline alone."""
    t0 = time.perf_counter()
    total = torch.zeros((), device=device)
    for x, _ in loader:
        total += x.to(device, non_blocking=True).sum()
    total.item()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="epochs per pipeline (at least 2; median reported)")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda, ... (default: the profile's)")
    parser.add_argument("--skip-case-study", action="store_true", help="only the pipeline comparison")
    args = parser.parse_args()
    if args.reps < 2:
        parser.error("--reps must be at least 2")

    profile = tl.get_profile()
    device = tl.choose_device(args.device or profile.device)
    sized = dataclasses.replace(profile, standin_train=60_000, standin_test=10_000)  # stand-ins at MNIST's size
    standins = tl.using_standins()
    print(f"device {device}{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else ''}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {os.cpu_count()} cores, "
          f"load average {load_average()}")
    print("data: " + ("STAND-INS at the real datasets' sizes (no real data in use; set TLCOURSE_STANDIN=0 "
                      "with the real data in place to measure on it)" if standins else f"real, in {tl.data_dir()}"))

    # --- 1. pipelines ---
    classic = tl.classic_loader("mnist", train=True, batch_size=100, num_workers=2, profile=sized)
    x, y = tl.dataset_tensors(tl.load_dataset("mnist", train=True, profile=sized))
    t0 = time.perf_counter()
    mean, std = tl.channel_stats(x)
    device_loader = tl.DeviceLoader(x, y, batch_size=100, device=device, mean=mean, std=std)
    setup = time.perf_counter() - t0
    n = len(y)
    for i, _ in enumerate(classic):  # start the worker processes before timing
        if i == 10:
            break
    print(f"\n1) one LeNet training epoch on {n:,} digits, batch 100, {args.reps} reps interleaved "
          f"(one-time conversion + upload for tlcourse: {setup:.2f} s)")
    times: dict[str, list[float]] = {"document (ToTensor + DataLoader, 2 workers)": [],
                                     "tlcourse (DeviceLoader, data on the device)": []}
    data_only: dict[str, list[float]] = {k: [] for k in times}
    pipelines = list(zip(times, (classic, device_loader)))
    for rep in range(args.reps):
        for name, loader in pipelines:
            times[name].append(epoch_seconds(loader, device, seed=rep))
            print(f"   rep {rep + 1} {name:45s} {times[name][-1]:6.2f} s", flush=True)
    for rep in range(args.reps):
        for name, loader in pipelines:
            data_only[name].append(data_seconds(loader, device))
    medians = {k: statistics.median(v) for k, v in times.items()}
    for name, med in medians.items():
        print(f"   {name:45s} median {med:6.2f} s/epoch  {n / med:9,.0f} images/s  "
              f"(data pass alone: {statistics.median(data_only[name]):.2f} s)")
    (doc, ours) = medians.values()
    print(f"   ratio: tlcourse is {doc / ours:.2f}x faster per epoch than the document's pipeline")

    # --- 2. the whole case study ---
    if args.skip_case_study:
        return
    settings = tl.CaseStudySettings.for_profile(profile)
    print(f"\n2) the whole LeNet case study, profile {profile.name}: {profile.source_epochs} source epochs + "
          f"{profile.target_epochs} target epochs (all labels) + evaluation")
    tl.load_dataset("cifar10", train=True, profile=sized)  # generate stand-ins (if any) before the clock starts
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        source, history = tl.source_model(sized, device, path=Path(tmp) / "source.pt", retrain=True, verbose=False)
        t1 = time.perf_counter()
        train, test = tl.cifar_tensors(sized, train=True), tl.cifar_tensors(sized, train=False)
        if standins:
            train = train[0][:50_000], train[1][:50_000]  # CIFAR-10 has 50,000 training images
        row = tl.run_arm("finetune", source, train, test, budget=None, seed=0, profile=sized, device=device,
                         settings=settings)
        t2 = time.perf_counter()
    print(f"   source: {history.epochs} epochs on 3x32x32 digits, {t1 - t0:.1f} s "
          f"(test accuracy {history.test_acc[-1]:.1%})")
    print(f"   target: {row['steps']} steps ({row['epochs']:g} epochs) on {row['labels']:,} CIFAR-10 images + test on "
          f"{len(test[1]):,}, {t2 - t1:.1f} s (test accuracy {row['test_acc']:.1%})")
    print(f"   whole case study: {t2 - t0:.1f} s wall time")
    print(f"\nload average after: {load_average()} (other processes on the same cores inflate every number above)")


if __name__ == "__main__":
    main()
