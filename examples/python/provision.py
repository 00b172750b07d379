"""Provision the example environments with the Harmonix Python API and
print their catalog entities.

    HARMONIX_ENDPOINT_URL=http://127.0.0.1:5000 python examples/python/provision.py [SPEC...]

Without arguments it provisions examples/specs/ecs.yaml and
examples/specs/serverless.yaml. Credentials come from the standard AWS
configuration; HARMONIX_ENDPOINT_URL points every client at another
endpoint (a local emulator, say). The catalog goes to catalog-info.yaml in
the current directory.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import harmonix
from harmonix.progress import TqdmProgress

EXAMPLES = Path(__file__).resolve().parent.parent / "specs"


def main(argv: list[str]) -> int:
    paths = argv or [str(EXAMPLES / "ecs.yaml"), str(EXAMPLES / "serverless.yaml")]
    try:
        specs = harmonix.load(*paths)
    except harmonix.ValidationError as e:
        for path, value, message in e.errors:
            print(f"{path} = {value!r}: {message}", file=sys.stderr)
        return 1

    engine = harmonix.Engine(
        endpoint_url=os.environ.get("HARMONIX_ENDPOINT_URL"),
        caller=os.environ.get("HARMONIX_CALLER", "python-example"),
        concurrency=4,
    )
    plan = engine.plan(specs)
    print(plan.diff())
    try:
        with TqdmProgress(total=len(plan.stacks), desc="apply") as progress:
            report = engine.apply(plan, catalog_path="catalog-info.yaml", on_event=progress)
    except harmonix.StackFailedError as e:
        print(f"failed: {e.stack}: {e.reason}", file=sys.stderr)
        return 1
    except harmonix.HarmonixError as e:
        print(f"{e.code}: {e}", file=sys.stderr)
        return 1

    for entity in report.entities:
        meta = entity["metadata"]
        print(f"{entity['kind']} {meta['name']}: vpc {meta.get('vpc')}, stack {meta.get('stackName')}")
    if report.catalog is not None:
        print(f"catalog {report.catalog.path} {report.catalog.outcome}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
