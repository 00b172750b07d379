"""The minimal set of CloudFormation calls a perfect tool would make, as its
own process (so its wall time and RSS are measured like the tools'):

    python perfect.py create|update|noop|plan MANIFEST [NAMES...]

- create: CreateStack for every stack of the manifest (16 at a time), then
  one paginated DescribeStacks per polling round until all are complete;
- update: one paginated DescribeStacks, UpdateStack for the named stacks,
  then polling rounds as above;
- noop / plan: one paginated DescribeStacks, comparing hash tags.

Polling waits 1 s between rounds under the timing model (the stacks take
seconds), none without it. Endpoint and credentials come from the
environment (AWS_ENDPOINT_URL)."""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List

import boto3


def stacks_of(manifest: Path) -> List[Dict[str, Any]]:
    entries: List[Dict[str, Any]] = json.loads(manifest.read_text())
    for e in entries:
        e["templateBody"] = (manifest.parent / e["templateFile"]).read_text()
    return entries


def describe_all(cfn: Any) -> Dict[str, Dict[str, Any]]:
    out: Dict[str, Dict[str, Any]] = {}
    for page in cfn.get_paginator("describe_stacks").paginate():
        for s in page["Stacks"]:
            out[s["StackName"]] = s
    return out


def wait(cfn: Any, names: List[str], poll: float, limit: float = 900.0) -> None:
    pending = set(names)
    deadline = time.monotonic() + limit
    while pending:
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(pending)} stacks still in progress after {limit:.0f} s, e.g. {sorted(pending)[:3]}")
        state = describe_all(cfn)
        pending = {n for n in pending if state.get(n, {}).get("StackStatus", "").endswith("_IN_PROGRESS")}
        if pending:
            time.sleep(poll)


def params(e: Dict[str, Any]) -> List[Dict[str, str]]:
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in e["parameters"].items()]


def tags(e: Dict[str, Any]) -> List[Dict[str, str]]:
    t = dict(e["tags"])
    t["harmonix:hash"] = e["hash"]
    return [{"Key": k, "Value": v} for k, v in t.items()]


def main() -> int:
    mode, manifest = sys.argv[1], Path(sys.argv[2])
    only = set(sys.argv[3:])
    poll = 1.0 if len(sys.argv) > 0 and "--model" in only else 0.0
    only.discard("--model")
    cfn = boto3.client("cloudformation")
    entries = stacks_of(manifest)
    if mode == "create":
        def create(e: Dict[str, Any]) -> None:
            # Retried: the emulator answers some concurrent creates with
            # errors; a perfect tool would retry them too.
            for attempt in range(8):
                try:
                    cfn.create_stack(
                        StackName=e["name"],
                        TemplateBody=e["templateBody"],
                        Parameters=params(e),
                        Tags=tags(e),
                        Capabilities=e["capabilities"],
                    )
                    return
                except Exception as err:  # noqa: BLE001 - any failure is retried, the last one raised
                    if "AlreadyExists" in str(err):
                        return
                    if attempt == 7:
                        raise
                    time.sleep(0.2 * (attempt + 1))

        # PERFECT_THREADS=1 for large setups: moto leaves some stacks
        # stuck in CREATE_IN_PROGRESS under many concurrent creates.
        threads = int(os.environ.get("PERFECT_THREADS", "16"))
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(create, entries))
        wait(cfn, [e["name"] for e in entries], poll)
    elif mode == "update":
        state = describe_all(cfn)
        changed = []
        for e in entries:
            if e["name"] not in only:
                continue
            deployed = {t["Key"]: t["Value"] for t in state.get(e["name"], {}).get("Tags", [])}
            if deployed.get("harmonix:hash") == e["hash"]:
                continue
            cfn.update_stack(
                StackName=e["name"],
                TemplateBody=e["templateBody"],
                Parameters=params(e),
                Tags=tags(e),
                Capabilities=e["capabilities"],
            )
            changed.append(e["name"])
        wait(cfn, changed, poll)
    elif mode in ("noop", "plan"):
        state = describe_all(cfn)
        differ = [e["name"] for e in entries if {t["Key"]: t["Value"] for t in state.get(e["name"], {}).get("Tags", [])}.get("harmonix:hash") != e["hash"]]
        print(json.dumps({"differ": differ}))
    else:
        print(f"unknown mode {mode}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
