"""``crane demo`` end to end: wall time, per-stage seconds and peak memory of one fresh run.

Runs ``crane demo --out <fresh dir>`` under ``/usr/bin/time -v`` (GNU time; without it the
peak RSS comes from ``getrusage``) and records the wall time, the stage seconds the study writes
(``study.json``: ``stage_seconds``, ``seconds``), the peak resident memory, and the machine load
before and after (``os.getloadavg``: on a shared machine the wall time depends on it). No
baseline: this is the number a user waits for. About 10 minutes on two cores.

    .venv/bin/python bench/demo_end_to_end.py [--out DIR] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _results import machine, write_section  # noqa: I001  (bench/ is not a package)

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, help="fresh run directory (default: a temporary one)")
    parser.add_argument(
        "--threads", type=int, help="OMP_NUM_THREADS for the run (default: torch's own choice)"
    )
    args = parser.parse_args()
    crane = Path(sys.executable).with_name("crane")
    if not crane.exists():
        raise SystemExit(f"{crane} is missing; install the project (make install)")
    tmp = None
    if args.out is None:
        tmp = tempfile.mkdtemp(prefix="crane-demo-bench-")
        out = Path(tmp) / "demo"
    else:
        out = args.out
        if out.exists() and any(out.iterdir()):
            raise SystemExit(f"{out} is not empty; the benchmark needs a fresh run directory")
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    gnu_time = shutil.which("time", path="/usr/bin:/bin")
    command = [str(crane), "demo", "--out", str(out)]
    if gnu_time:
        command = [gnu_time, "-v", *command]

    load_before = os.getloadavg()
    uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    started = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    load_after = os.getloadavg()
    uptime_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"crane demo failed (exit {proc.returncode})")

    peak_kib = None
    user = system = None
    if gnu_time:
        found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
        peak_kib = int(found.group(1)) if found else None
        user_m = re.search(r"User time \(seconds\): ([\d.]+)", proc.stderr)
        sys_m = re.search(r"System time \(seconds\): ([\d.]+)", proc.stderr)
        user = float(user_m.group(1)) if user_m else None
        system = float(sys_m.group(1)) if sys_m else None
    if peak_kib is None:
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    study = json.loads((out / "study.json").read_text(encoding="utf-8"))
    stages = study.get("stage_seconds", {})

    fmt = ", ".join
    lines = [
        f"One fresh `crane demo` run (Gemma 3 270M, float32, CPU; en, zh, vi; every method, "
        f"masked evaluation, report). Machine: {machine()} (torch threads of this process; the "
        f"run uses {'OMP_NUM_THREADS=' + str(args.threads) if args.threads else 'torch defaults'}), "
        f"{os.cpu_count()} CPUs.",
        "",
        f"- load average (1, 5, 15 min) before: {fmt(f'{x:.2f}' for x in load_before)}; after: "
        f"{fmt(f'{x:.2f}' for x in load_after)} (`uptime` before: `{uptime_before}`; after: "
        f"`{uptime_after}`)",
        f"- wall time: {wall:.0f} s ({wall / 60:.1f} min)"
        + (f"; CPU user {user:.0f} s, system {system:.0f} s" if user is not None else ""),
        f"- peak resident memory: {peak_kib / 1024:.0f} MiB",
        f"- study.json `seconds` (the pipeline itself): {study.get('seconds', float('nan')):.0f} s",
        "",
        "| stage | seconds |",
        "|---|---:|",
    ]
    for name, seconds in stages.items():
        lines.append(f"| {name} | {seconds:.0f} |")
    rest = wall - sum(stages.values())
    lines.append(f"| rest (start-up, model load, report) | {rest:.0f} |")
    body = "\n".join(lines)
    print(body)
    print(f"wrote {write_section('crane demo end to end', body)}")
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
