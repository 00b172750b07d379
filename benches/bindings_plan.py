#!/usr/bin/env python3
"""Plan N example specs through a binding and through Rust, on one
emulator, and print the ratio.

    .venv/bin/python benches/bindings_plan.py [--specs 100] [--iterations 15]
                                               [--profile release|dev] [--node]

Needs the `harmonix` Python package installed in the running interpreter
(`pip install ./harmonix-py` builds a release wheel) and, with `--node`,
the Node addon built in harmonix-node/. The Rust baseline is
`harmonix-plan-bench` (benches/plan_bench.rs), built here with cargo.

What is measured, per iteration and on each side: load the N spec files
and plan them with one long-lived engine (the environments are deployed
first, so each plan reads the state and finds nothing to change: the work
is parsing, validating, rendering and hashing N specs, plus one paginated
state read). The first iteration is a warm-up. Medians are compared; the
goal is a binding within 10 % of Rust.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_emulator() -> "tuple[subprocess.Popen[bytes], str]":
    moto = Path(sys.executable).parent / "moto_server"
    port = free_port()
    proc = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the emulator did not start")


def write_specs(n: int, out: Path) -> List[Path]:
    base = (REPO / "examples/specs/serverless.yaml").read_text()
    base = re.sub(
        r"(?m)^    vpc:\n(?:      .*\n)+",
        "    vpc:\n      mode: existing\n      id: vpc-0123456789abcdef0\n",
        base,
    )
    paths = []
    for i in range(n):
        p = out / f"orders-{i:03}.yaml"
        p.write_text(base.replace("name: orders-dev\n", f"name: orders-{i:03}\n"))
        paths.append(p)
    return paths


def rust(endpoint: str, files: List[Path], iterations: int, profile: str) -> Dict[str, object]:
    args = ["cargo", "build", "--quiet", "-p", "harmonix-benches", "--bin", "harmonix-plan-bench"]
    if profile == "release":
        args.append("--release")
    subprocess.run(args, cwd=REPO, check=True)
    binary = REPO / "target" / ("release" if profile == "release" else "debug") / "harmonix-plan-bench"
    out = subprocess.run(
        [str(binary), "--endpoint", endpoint, "--iterations", str(iterations), *map(str, files)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: Dict[str, object] = json.loads(out.stdout)
    return result


def python(endpoint: str, files: List[Path], iterations: int) -> Dict[str, object]:
    import harmonix

    engine = harmonix.Engine(endpoint_url=endpoint, caller="bench", api_rate=10_000.0, api_burst=10_000)
    times = []
    stacks, noop = 0, True
    for i in range(iterations + 1):
        start = time.perf_counter()
        plan = engine.plan(harmonix.load(*files))
        ms = (time.perf_counter() - start) * 1000
        stacks, noop = len(plan.stacks), noop and plan.is_noop
        if i:
            times.append(ms)
    return {"iterations_ms": times, "median_ms": statistics.median(times), "stacks": stacks, "noop": noop}


def node(endpoint: str, files: List[Path], iterations: int) -> Dict[str, object]:
    script = REPO / "harmonix-node" / "bench" / "plan.mjs"
    out = subprocess.run(
        ["node", str(script), endpoint, str(iterations), *map(str, files)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: Dict[str, object] = json.loads(out.stdout)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--specs", type=int, default=100)
    ap.add_argument("--iterations", type=int, default=15)
    ap.add_argument("--profile", choices=["release", "dev"], default="release")
    ap.add_argument("--node", action="store_true", help="also measure the Node addon")
    ap.add_argument("--no-python", action="store_true", help="skip the Python package")
    ap.add_argument("--out", type=Path, help="also write the table (Markdown) to this file")
    args = ap.parse_args()

    for k, v in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1"}.items():
        os.environ[k] = v
    proc, endpoint = start_emulator()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            files = write_specs(args.specs, Path(tmp))
            # Deploy once with the CLI so every side plans the same state.
            subprocess.run(["cargo", "build", "--quiet", "-p", "harmonix-cli"], cwd=REPO, check=True)
            cli = REPO / "target" / "debug" / "harmonix"
            subprocess.run(
                [str(cli), "apply", "--yes", "--no-catalog", "--api-rate", "10000", "--api-burst", "10000",
                 "--endpoint-url", endpoint, *map(str, files)],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            results = {"rust": rust(endpoint, files, args.iterations, args.profile)}
            if not args.no_python:
                results["python"] = python(endpoint, files, args.iterations)
            if args.node:
                results["node"] = node(endpoint, files, args.iterations)
    finally:
        proc.terminate()
        proc.wait(10)

    base = float(results["rust"]["median_ms"])  # type: ignore[arg-type]
    lines = [
        f"# Plan of {args.specs} specs: bindings vs Rust",
        "",
        f"{platform.node()} ({os.cpu_count()} cores), Python {platform.python_version()}, "
        f"profile {args.profile}, {args.iterations} iterations after a warm-up, "
        f"{time.strftime('%Y-%m-%d')}",
        "",
        "| side | median ms | min ms | stacks | no-op | ratio to Rust |",
        "|---|---|---|---|---|---|",
    ]
    ok = True
    for side, r in results.items():
        med = float(r["median_ms"])  # type: ignore[arg-type]
        times = r["iterations_ms"]
        assert isinstance(times, list)
        ratio = med / base if base else float("nan")
        if side != "rust" and ratio > 1.10:
            ok = False
        lines.append(
            f"| {side} | {med:.1f} | {min(times):.1f} | {r['stacks']} | {r['noop']} | {ratio:.3f} |"
        )
    lines += ["", "Goal: each binding within 10 % of Rust (ratio ≤ 1.10): " + ("met." if ok else "MISSED.")]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
