#!/usr/bin/env python3
"""Harmonix side by side with the AWS CLI and Sceptre on the same emulator.

    benches/compare/run [--n 50] [--n-plan 200] [--models off,on] [--smoke]

(`benches/compare/run` installs the peers, builds the binaries and runs
this with the project's venv.) For every tool, on a fresh emulator (moto)
behind the counting proxy (`harmonix-proxy`):

  (a) create N new environments;
  (b) no-op re-deploy of all N;
  (c) change one parameter (the log retention) in 5 of them, deploy;
  (d) no-op plan of N_PLAN deployed environments (deployed up front,
      untimed, with the same templates, parameters and tags for every tool).

Tools: `harmonix apply` / `harmonix plan` (one process for all
environments); the AWS CLI (`aws cloudformation deploy`, one process per
environment, sequentially, as one pipeline job per environment does);
Sceptre 4.7 (`sceptre launch` / `sceptre diff` on a generated project with
every stack); and a perfect tool (`perfect.py`: the minimal calls, the
physical limit of this setup).

Each scenario runs with the proxy's AWS timing model off (the emulator as
is: synchronous stacks) and on (80 ms per call; stacks in progress for
(30 s + 4 s per resource) / 100 after create/update). Under the model the
AWS CLI polls every 30 s (its waiter), so its sequential runs are measured
on at most 5 environments and extrapolated linearly (marked `~`).

Reported per run: wall time, API calls (total and by action, as the proxy
saw them), peak RSS of the tool's processes, and Harmonix's speed-up over
each peer. Written to benches/results/compare.md and printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Run:
    tool: str
    scenario: str
    model: str
    wall: float
    calls: Dict[str, int]
    rss_mb: float
    extrapolated: bool = False
    ok: bool = True
    note: str = ""

    @property
    def total(self) -> int:
        return sum(self.calls.values())


@dataclass
class Env:
    """One emulator + proxy pair."""

    moto: "subprocess.Popen[bytes]"
    proxy: "subprocess.Popen[bytes]"
    url: str

    def counts(self) -> Dict[str, int]:
        with urllib.request.urlopen(f"{self.url}/__proxy/counts") as r:
            data = json.loads(r.read())
        return {k: int(v) for k, v in data["byAction"].items()}

    def reset(self) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/__proxy/reset", method="POST")).read()

    def stop(self) -> None:
        for p in (self.proxy, self.moto):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def start_env(bins: Dict[str, Path], model: bool) -> Env:
    moto_port = free_port()
    moto = subprocess.Popen(
        [str(REPO / ".venv/bin/moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{moto_port}/moto-api/data.json", timeout=1).read()
            break
        except OSError:
            time.sleep(0.1)
    config = {"latencyMs": 80, "model": True} if model else {}
    proxy = subprocess.Popen(
        [str(bins["proxy"]), "--upstream", str(moto_port), "--config", json.dumps(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proxy.stdout is not None
    line = proxy.stdout.readline().decode()
    m = re.search(r"(http://\S+)", line)
    if not m:
        raise SystemExit(f"harmonix-proxy did not start: {line!r}")
    return Env(moto, proxy, m.group(1))


def run_procs(cmds: Sequence[Sequence[str]], env: Dict[str, str], cwd: Path) -> "tuple[float, float, bool, str]":
    """Run commands one after another; wall time, peak RSS (MB) of any of
    them, whether all succeeded, and the first failure's output tail."""
    start = time.perf_counter()
    peak = 0
    ok = True
    note = ""
    for cmd in cmds:
        with tempfile.TemporaryFile() as out:
            p = subprocess.Popen(list(cmd), env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
            peak = max(peak, usage.ru_maxrss)
            if p.returncode != 0 and ok:
                ok = False
                out.seek(0)
                note = out.read().decode(errors="replace")[-400:].replace("\n", " ")
    return time.perf_counter() - start, peak / 1024, ok, note


def write_specs(n: int, out: Path, retention: Optional[Dict[int, int]] = None) -> List[Path]:
    base = (REPO / "examples/specs/ecs.yaml").read_text()
    base = re.sub(
        r"(?m)^    vpc:\n(?:      .*\n)+",
        "    vpc:\n      mode: existing\n      id: vpc-0123456789abcdef0\n",
        base,
    )
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        text = base.replace("name: payments-dev\n", f"name: env-{i:03}\n")
        if retention and i in retention:
            text = text.replace("    owner:", f"    logRetentionDays: {retention[i]}\n    owner:", 1)
        p = out / f"env-{i:03}.yaml"
        p.write_text(text)
        paths.append(p)
    return paths


def render(bins: Dict[str, Path], specs: List[Path], out: Path) -> List[dict]:
    if out.exists():
        shutil.rmtree(out)
    subprocess.run([str(bins["harmonix"]), "render", *map(str, specs), "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
    manifest: List[dict] = json.loads((out / "manifest.json").read_text())
    return manifest


def sceptre_project(root: Path, rendered: Path, manifest: List[dict]) -> Path:
    proj = root / "sceptre"
    if proj.exists():
        shutil.rmtree(proj)
    (proj / "config" / "envs").mkdir(parents=True)
    (proj / "templates").mkdir()
    (proj / "config" / "config.yaml").write_text("project_code: hx\nregion: us-east-1\n")
    for e in manifest:
        shutil.copy(rendered / e["templateFile"], proj / "templates" / e["templateFile"])
        tags = dict(e["tags"])
        tags["harmonix:hash"] = e["hash"]
        cfg = {
            "template": {"type": "file", "path": e["templateFile"]},
            "stack_name": e["name"],
            "parameters": e["parameters"],
            "stack_tags": tags,
        }
        (proj / "config" / "envs" / f"{e['provider']}.yaml").write_text(json.dumps(cfg, indent=1))
    return proj


def cli_deploy_cmds(aws: Path, rendered: Path, manifest: List[dict], extra: Sequence[str]) -> List[List[str]]:
    cmds = []
    for e in manifest:
        tags = dict(e["tags"])
        tags["harmonix:hash"] = e["hash"]
        cmds.append(
            [str(aws), "cloudformation", "deploy", "--template-file", str(rendered / e["templateFile"]),
             "--stack-name", e["name"], "--capabilities", "CAPABILITY_NAMED_IAM",
             "--parameter-overrides", *[f"{k}={v}" for k, v in e["parameters"].items()],
             "--tags", *[f"{k}={v}" for k, v in tags.items()], *extra]
        )
    return cmds


HARMONIX_FLAGS = ["--concurrency", "16", "--api-rate", "50", "--api-burst", "50", "--poll-ms", "250", "2000"]


def tool_env(url: str) -> Dict[str, str]:
    env = dict(os.environ)
    env.update(
        AWS_ENDPOINT_URL=url,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        HARMONIX_CALLER="bench",
    )
    env.pop("AWS_PROFILE", None)
    return env


def measure(
    envp: Env, tool: str, scenario: str, model: str, cmds: Sequence[Sequence[str]], cwd: Path,
    scale: float = 1.0,
) -> Run:
    envp.reset()
    wall, rss, ok, note = run_procs(cmds, tool_env(envp.url), cwd)
    calls = envp.counts()
    if scale != 1.0:
        calls = {k: round(v * scale) for k, v in calls.items()}
        wall *= scale
    return Run(tool, scenario, model, wall, calls, rss, extrapolated=scale != 1.0, ok=ok, note=note)


def bench_tool(tool: str, model: bool, n: int, n_plan: int, bins: Dict[str, Path], work: Path) -> List[Run]:
    mname = "on" if model else "off"
    runs: List[Run] = []
    root = work / f"{tool}-{mname}"
    root.mkdir(parents=True, exist_ok=True)
    specs = write_specs(n, root / "specs")
    manifest = render(bins, specs, root / "rendered")
    changed_idx = {i: 30 for i in range(min(5, n))}
    specs_changed = write_specs(n, root / "specs-changed", changed_idx)
    manifest_changed = render(bins, specs_changed, root / "rendered-changed")
    peers = REPO / ".venv-peers" / "bin"
    py = REPO / ".venv" / "bin" / "python"
    perfect = HERE / "perfect.py"

    # --- (a), (b), (c) on one emulator ------------------------------------
    envp = start_env(bins, model)
    try:
        if tool == "harmonix":
            h = str(bins["harmonix"])
            runs.append(measure(envp, tool, "a", mname, [[h, "apply", "--yes", "--no-catalog", *HARMONIX_FLAGS, *map(str, specs)]], root))
            runs.append(measure(envp, tool, "b", mname, [[h, "apply", "--yes", "--no-catalog", *HARMONIX_FLAGS, *map(str, specs)]], root))
            runs.append(measure(envp, tool, "c", mname, [[h, "apply", "--yes", "--no-catalog", *HARMONIX_FLAGS, *map(str, specs_changed)]], root))
        elif tool == "awscli":
            k = n if not model else min(n, 5)
            scale = n / k
            aws = peers / "aws"
            runs.append(measure(envp, tool, "a", mname, cli_deploy_cmds(aws, root / "rendered", manifest[:k], []), root, scale))
            if k < n:  # the other environments, untimed (for (b) and (c))
                rest = root / "rendered" / "rest.json"
                rest.write_text(json.dumps(manifest[k:]))
                run_procs([[str(py), str(perfect), "create", str(rest)]], tool_env(envp.url), root)
            runs.append(measure(envp, tool, "b", mname, cli_deploy_cmds(aws, root / "rendered", manifest[:k], ["--no-fail-on-empty-changeset"]), root, scale))
            changed = [e for i, e in enumerate(manifest_changed) if i in changed_idx]
            runs.append(measure(envp, tool, "c", mname, cli_deploy_cmds(aws, root / "rendered-changed", changed, ["--no-fail-on-empty-changeset"]), root))
        elif tool == "sceptre":
            sc = str(peers / "sceptre")
            proj = sceptre_project(root, root / "rendered", manifest)
            runs.append(measure(envp, tool, "a", mname, [[sc, "--dir", str(proj), "launch", "--yes", "envs"]], root))
            runs.append(measure(envp, tool, "b", mname, [[sc, "--dir", str(proj), "launch", "--yes", "envs"]], root))
            proj = sceptre_project(root, root / "rendered-changed", manifest_changed)
            runs.append(measure(envp, tool, "c", mname, [[sc, "--dir", str(proj), "launch", "--yes", "envs"]], root))
        elif tool == "perfect":
            mf = root / "rendered" / "manifest.json"
            flag = ["--model"] if model else []
            runs.append(measure(envp, tool, "a", mname, [[str(py), str(perfect), "create", str(mf), *flag]], root))
            runs.append(measure(envp, tool, "b", mname, [[str(py), str(perfect), "noop", str(mf)]], root))
            names = [e["name"] for i, e in enumerate(manifest_changed) if i in changed_idx]
            runs.append(measure(envp, tool, "c", mname, [[str(py), str(perfect), "update", str(root / "rendered-changed" / "manifest.json"), *names, *flag]], root))
    finally:
        envp.stop()

    # --- (d) no-op plan of n_plan environments -------------------------------
    specs_d = write_specs(n_plan, root / "specs-plan")
    manifest_d = render(bins, specs_d, root / "rendered-plan")
    envp = start_env(bins, False)  # deploy untimed, without the model
    try:
        run_procs([[str(py), str(perfect), "create", str(root / "rendered-plan" / "manifest.json")]], tool_env(envp.url), root)
        if model:
            cfg = json.dumps({"latencyMs": 80, "model": True}).encode()
            urllib.request.urlopen(urllib.request.Request(f"{envp.url}/__proxy/config", data=cfg, method="POST")).read()
        if tool == "harmonix":
            runs.append(measure(envp, tool, "d", mname, [[str(bins["harmonix"]), "plan", *HARMONIX_FLAGS, *map(str, specs_d)]], root))
        elif tool == "awscli":
            cmds = cli_deploy_cmds(peers / "aws", root / "rendered-plan", manifest_d, ["--no-execute-changeset", "--no-fail-on-empty-changeset"])
            k = min(len(cmds), 20)
            runs.append(measure(envp, tool, "d", mname, cmds[:k], root, len(cmds) / k))
        elif tool == "sceptre":
            proj = sceptre_project(root, root / "rendered-plan", manifest_d)
            runs.append(measure(envp, tool, "d", mname, [[str(peers / "sceptre"), "--dir", str(proj), "diff", "envs"]], root))
        elif tool == "perfect":
            runs.append(measure(envp, tool, "d", mname, [[str(py), str(perfect), "plan", str(root / "rendered-plan" / "manifest.json")]], root))
    finally:
        envp.stop()
    return runs


def measure_memory(bins: Dict[str, Path], n: int, work: Path) -> Run:
    """Peak RSS of `harmonix plan` over n deployed environments."""
    specs = write_specs(n, work / "specs")
    render(bins, specs, work / "rendered")
    py = REPO / ".venv" / "bin" / "python"
    envp = start_env(bins, False)
    try:
        print(f"==> memory: deploying {n} environments", file=sys.stderr, flush=True)
        env = dict(tool_env(envp.url), PERFECT_THREADS="1")
        _, _, ok, note = run_procs([[str(py), str(HERE / "perfect.py"), "create", str(work / "rendered" / "manifest.json")]], env, work)
        if not ok:
            raise SystemExit(f"memory: deploying {n} environments failed: {note}")
        r = measure(envp, "harmonix", "memory", "off", [[str(bins["harmonix"]), "plan", *HARMONIX_FLAGS, *map(str, specs)]], work)
        # A no-op plan reads the deployed state page by page (50 stacks a
        # page) and makes no change set: more calls mean stacks were
        # missing and the measurement is not of a no-op plan.
        if r.calls.get("CreateChangeSet", 0) or r.total > n // 50 * 3 + 20:
            r.ok = False
            r.note = f"not a no-op plan: {r.total} requests ({top(r.calls)})"
        return r
    finally:
        envp.stop()
        shutil.rmtree(work, ignore_errors=True)


def memory_section(memory: Run, n: int) -> str:
    verdict = "met" if memory.rss_mb < 64 else "MISSED"
    if not memory.ok:
        verdict = f"INVALID: {memory.note}"
    return (
        f"\n### Memory\n\nPeak RSS of `harmonix plan` (a no-op plan: {top(memory.calls)}) over {n} deployed "
        f"environments: {memory.rss_mb:.1f} MB ({memory.wall:.2f} s, {memory.total} requests; goal under 64 MB: {verdict}).\n"
    )


SCENARIOS = {
    "a": "create N new environments",
    "b": "no-op re-deploy of all N",
    "c": "change one parameter in 5, deploy",
    "d": "no-op plan of N_PLAN",
}


def top(calls: Dict[str, int], k: int = 4) -> str:
    items = sorted(calls.items(), key=lambda kv: -kv[1])[:k]
    return ", ".join(f"{a} {v}" for a, v in items)


def table(runs: List[Run], n: int, n_plan: int) -> str:
    lines = []
    for model in ("off", "on"):
        sel = [r for r in runs if r.model == model]
        if not sel:
            continue
        lines += [
            "",
            f"### AWS timing model {model}" + (" (80 ms per call; stacks in progress (30 s + 4 s/resource)/100)" if model == "on" else " (the emulator as is)"),
            "",
            "| scenario | tool | wall s | API calls | top calls | peak RSS MB | Harmonix speed-up | vs perfect |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for sc, desc in SCENARIOS.items():
            desc = desc.replace("N_PLAN", str(n_plan)).replace("N", str(n))
            h = next((r for r in sel if r.scenario == sc and r.tool == "harmonix"), None)
            p = next((r for r in sel if r.scenario == sc and r.tool == "perfect"), None)
            for r in (x for x in sel if x.scenario == sc):
                speed = f"{r.wall / h.wall:.1f}×" if h and r.tool not in ("harmonix",) and h.wall > 0 else ""
                if r.tool == "perfect":
                    speed = f"(limit) {r.wall / h.wall:.2f}×" if h and h.wall > 0 else ""
                vs = f"{r.wall / p.wall:.1f}× the limit" if p and p.wall > 0 and r.tool != "perfect" else ""
                mark = "~" if r.extrapolated else ""
                status = "" if r.ok else f" FAILED: {r.note[:120]}"
                lines.append(
                    f"| ({sc}) {desc} | {r.tool}{status} | {mark}{r.wall:.2f} | {mark}{r.total} | {top(r.calls)} | {r.rss_mb:.0f} | {speed} | {vs} |"
                )
    return "\n".join(lines)


def versions() -> str:
    def out(cmd: List[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip() or subprocess.run(cmd, capture_output=True, text=True, check=False).stderr.strip()
        except OSError:
            return "?"

    peers = REPO / ".venv-peers" / "bin"
    moto = out([str(REPO / ".venv/bin/python"), "-c", "import moto; print(moto.__version__)"])
    return (
        f"harmonix {out([str(REPO / 'target/release/harmonix'), '--version']).split()[-1] if (REPO / 'target/release/harmonix').exists() else '?'}, "
        f"{out([str(peers / 'aws'), '--version']).split()[0]}, sceptre {out([str(peers / 'sceptre'), '--version']).split()[-1]}, moto {moto}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--n-plan", type=int, default=200)
    ap.add_argument("--n-memory", type=int, default=1000, help="deployed stacks for the memory measurement")
    ap.add_argument("--models", default="off,on")
    ap.add_argument("--tools", default="harmonix,perfect,sceptre,awscli")
    ap.add_argument("--profile", choices=["release", "dev"], default="release")
    ap.add_argument("--smoke", action="store_true", help="N = N_PLAN = 3, dev builds, no AWS CLI under the model")
    ap.add_argument("--out", type=Path, default=REPO / "benches" / "results" / "compare.md")
    ap.add_argument("--memory-only", action="store_true", help="only re-measure memory; replace that section of --out")
    args = ap.parse_args()
    if args.smoke:
        args.n, args.n_plan, args.n_memory, args.profile = 3, 3, 3, "dev"

    target = REPO / "target" / ("release" if args.profile == "release" else "debug")
    build = ["cargo", "build", "--quiet", "-p", "harmonix-cli", "-p", "harmonix-tests", "--bin", "harmonix", "--bin", "harmonix-proxy"]
    if args.profile == "release":
        build.append("--release")
    subprocess.run(build, cwd=REPO, check=True)
    bins = {"harmonix": target / "harmonix", "proxy": target / "harmonix-proxy"}

    if args.memory_only:
        memory = measure_memory(bins, args.n_memory, Path(tempfile.mkdtemp(prefix="harmonix-memory-")))
        section = memory_section(memory, args.n_memory)
        print(section)
        old = args.out.read_text()
        head = old.split("\n### Memory\n", 1)[0]
        args.out.write_text(head + section)
        return 0 if memory.ok else 1

    runs: List[Run] = []
    started = time.strftime("%Y-%m-%d %H:%M")
    with tempfile.TemporaryDirectory(prefix="harmonix-compare-") as tmp:
        for model in [m.strip() == "on" for m in args.models.split(",") if m.strip()]:
            for tool in [t.strip() for t in args.tools.split(",") if t.strip()]:
                if args.smoke and model and tool == "awscli":
                    continue
                print(f"==> {tool}, model {'on' if model else 'off'}", file=sys.stderr, flush=True)
                runs.extend(bench_tool(tool, model, args.n, args.n_plan, bins, Path(tmp)))

    memory = measure_memory(bins, args.n_memory, Path(tempfile.mkdtemp(prefix="harmonix-memory-")))

    header = [
        f"# Harmonix vs the AWS CLI and Sceptre on the local emulator",
        "",
        f"{started}, {platform.node()} ({os.cpu_count()} cores, {platform.machine()}), profile {args.profile}; {versions()}.",
        f"N = {args.n}, N_PLAN = {args.n_plan}; ECS environments with an existing VPC (15 resources per stack).",
        f"Harmonix flags: `{' '.join(HARMONIX_FLAGS)}` (locks and audit on). `~`: AWS CLI measured on a subset of",
        "environments and extrapolated linearly (sequential jobs). Speed-up: peer wall time / Harmonix wall time.",
    ]
    text = "\n".join(header) + "\n" + table(runs, args.n, args.n_plan) + "\n"
    text += memory_section(memory, args.n_memory)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    (args.out.with_suffix(".json")).write_text(json.dumps([r.__dict__ for r in runs], indent=1))
    failed = [r for r in runs + [memory] if not r.ok]
    for r in failed:
        print(f"FAILED: {r.tool} ({r.scenario}, model {r.model}): {r.note}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
