"""The engine from Python against the local emulator: sync and asyncio,
progress events, exceptions, cancellation and fork."""

from __future__ import annotations

import _thread
import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest

import harmonix
from conftest import EXAMPLES, REPO, example_text


def engine(endpoint: str, **kw: object) -> harmonix.Engine:
    opts: dict[str, object] = dict(
        endpoint_url=endpoint, caller="pytest", poll_interval=(0.02, 0.2), api_rate=500.0, api_burst=100
    )
    opts.update(kw)
    return harmonix.Engine(**opts)  # type: ignore[arg-type]


def orders() -> harmonix.Specs:
    return harmonix.loads(example_text("serverless.yaml", existing_vpc=True), origin="orders.yaml")


def two_providers() -> harmonix.Specs:
    return orders() + harmonix.loads(example_text("ecs.yaml", existing_vpc=True), origin="ecs.yaml")


def test_plan_apply_noop_destroy_sync(emulator: str, tmp_path: Path) -> None:
    e = engine(emulator)
    specs = orders()
    planned: List[harmonix.Event] = []
    plan = e.plan(specs, on_event=planned.append)
    assert not plan.is_noop and plan.kind == "deploy"
    [stack] = plan.stacks
    assert stack.name == "opa-orders-dev-environment" and stack.action == "create"
    assert stack.change_set_id and any(c.logical_id == "Api" for c in stack.changes)
    assert plan.summary.add == len(stack.changes)
    assert "+ Api (AWS::ApiGateway::RestApi) create" in plan.diff()
    assert isinstance(planned[-1], harmonix.Planned) and planned[-1].changes == len(stack.changes)

    # The plan file round-trips; a modified one is refused.
    plan.save(tmp_path / "plan.json")
    again = harmonix.Plan.load(tmp_path / "plan.json")
    assert again.content_hash == plan.content_hash
    with pytest.raises(harmonix.InvalidPlanError):
        harmonix.Plan.from_json(plan.to_json().replace('"dev"', '"prod"'))

    events: List[harmonix.Event] = []
    report = e.apply(again, catalog_path=tmp_path / "catalog-info.yaml", on_event=events.append)
    assert report.succeeded and report.kind == "deploy"
    assert [s.outcome for s in report.stacks] == ["created"]
    kinds = [type(ev).__name__ for ev in events]
    # First use in this account/region: the bootstrap stack (API Gateway's
    # logging role, an account-level setting) runs before the environment.
    assert kinds == [
        "Locked",
        "Started",
        "StackDone",
        "Started",
        "StackDone",
        "Finished",
        "CatalogWritten",
    ], kinds
    assert [ev.stack for ev in events if isinstance(ev, harmonix.Started)] == [
        "harmonix-bootstrap",
        "opa-orders-dev-environment",
    ]
    done = events[2]
    assert isinstance(done, harmonix.StackDone) and done.status == "CREATE_COMPLETE"
    assert report.catalog is not None and report.catalog.outcome == "created"
    [entity] = report.entities
    assert entity["metadata"]["name"] == "orders-dev"
    assert entity["metadata"]["apiGatewayId"]
    assert "kind: AWSEnvironmentProvider" in (tmp_path / "catalog-info.yaml").read_text()

    # Re-plan: no changes, one DescribeStacks, no change set.
    before = e.request_counts
    assert e.plan(specs).is_noop
    after = e.request_counts
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    assert {k: v for k, v in delta.items() if v} == {"DescribeStacks": 1}

    [target] = e.status(specs)
    assert [(s.name, s.drift) for s in target.stacks] == [("opa-orders-dev-environment", "inSync")]
    assert target.stacks[0].state is not None and target.stacks[0].state.status == "CREATE_COMPLETE"

    entities, written = e.write_catalog(specs, tmp_path / "other.yaml")
    assert written is not None and written.outcome == "created"
    assert entities == report.entities

    # Applying the old plan again: the stack exists now.
    with pytest.raises(harmonix.PlanStaleError) as info:
        e.apply(again)
    assert info.value.code == "HARMONIX_PLAN_STALE"
    assert info.value.stack == "opa-orders-dev-environment"

    # Deleting the data of a production environment needs its own flag.
    with pytest.raises(harmonix.InvalidInputError) as refused:
        e.destroy(harmonix.load(EXAMPLES / "multi.yaml"), delete_data=True)
    assert "shop-prod-ecs" in str(refused.value)

    gone = e.destroy(specs)
    assert [s.outcome for s in gone.stacks] == ["deleted"]
    assert {k.logical_id for k in gone.kept} == {
        "AuditTable",
        "EnvironmentKey",
        "EnvironmentLogGroup",
    }
    assert e.status(specs)[0].stacks[0].drift == "missing"


def test_failed_stack_raises_with_stack_reason_and_report(emulator: str) -> None:
    # The emulator cannot create EKS clusters through CloudFormation: its
    # ExecuteChangeSet fails (HTTP 500), a real failure path for the engine.
    e = engine(emulator)
    specs = harmonix.load(EXAMPLES / "eks-public.yaml")
    with pytest.raises(harmonix.StackFailedError) as info:
        e.apply(specs)
    err = info.value
    assert err.code == "HARMONIX_STACK_FAILED"
    assert err.stack == "opa-web-dev-environment"
    assert "ExecuteChangeSet" in err.reason
    report = err.report
    assert isinstance(report, harmonix.ApplyReport) and not report.succeeded
    assert report.catalog_error is None and report.entities == []
    # Without raising: the same facts in the report (another environment:
    # the emulator leaves the failed one reviewable, and its change set
    # then executes).
    text = (EXAMPLES / "eks-public.yaml").read_text().replace("name: web-dev", "name: web-qa")
    report = e.apply(harmonix.loads(text, origin="eks-qa.yaml"), raise_on_failure=False)
    assert [s.outcome for s in report.stacks] == ["failed"]
    assert not report.succeeded


def test_lock_held_by_another_run(emulator: str) -> None:
    e = engine(emulator)
    specs = orders()
    e.bootstrap(specs)
    # Another run's lock item, as harmonix writes it.
    import boto3

    ddb = boto3.client(
        "dynamodb",
        endpoint_url=emulator,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    now = int(time.time() * 1000)
    item = {
        "lockId": {"S": "123456789012/us-east-1/opa-orders-dev"},
        "holderId": {"S": "someone-else"},
        "host": {"S": "runner-9"},
        "pid": {"N": "777"},
        "user": {"S": "gitlab-runner"},
        "command": {"S": "harmonix apply orders.yaml"},
        "acquiredAt": {"N": str(now)},
        "expiresAt": {"N": str(now + 600_000)},
    }
    ddb.put_item(TableName="harmonix-locks", Item=item)
    with pytest.raises(harmonix.LockHeldError) as info:
        e.apply(specs)
    err = info.value
    assert err.code == "HARMONIX_LOCK_HELD"
    assert err.lock_id == "123456789012/us-east-1/opa-orders-dev"
    assert "gitlab-runner@runner-9 pid 777" in err.holder
    assert err.expires_at.endswith("Z")


def test_asyncio(emulator: str, tmp_path: Path) -> None:
    async def run() -> None:
        e = harmonix.AsyncEngine(
            endpoint_url=emulator, caller="pytest", poll_interval=(0.02, 0.2), api_rate=500.0
        )
        specs = two_providers()
        events: List[harmonix.Event] = []
        plan = await e.plan(specs, on_event=events.append)
        assert len(plan.stacks) == 2
        assert sorted(ev.stack for ev in events if isinstance(ev, harmonix.Planned)) == [
            "opa-orders-dev-environment",
            "opa-payments-dev-environment",
        ]
        # Other coroutines keep running while the engine works.
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        t = asyncio.ensure_future(ticker())
        report = await e.apply(plan, catalog_path=tmp_path / "catalog-info.yaml")
        t.cancel()
        assert report.succeeded
        assert ticks > 0
        status = await e.status(specs)
        assert all(s.drift == "inSync" for s in status[0].stacks)
        entities, _ = await e.write_catalog(specs)
        assert len(entities) == 2
        assert (await e.plan(specs)).is_noop
        gone = await e.destroy(specs)
        assert sorted(s.outcome for s in gone.stacks) == ["deleted", "deleted"]
        with pytest.raises(harmonix.ValidationError):
            harmonix.loads("providers: 3")

    asyncio.run(run())


def _lock_table_empty(endpoint: str) -> bool:
    import boto3

    ddb = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return ddb.scan(TableName="harmonix-locks")["Count"] == 0


def test_ctrl_c_stops_cleanly_and_a_rerun_converges(emulator: str) -> None:
    e = engine(emulator, concurrency=1)
    specs = two_providers()
    e.bootstrap(specs)  # the account-level stack first, as an admin would
    plan = e.plan(specs)
    started: List[str] = []

    def on_event(ev: harmonix.Event) -> None:
        if isinstance(ev, harmonix.Started):
            started.append(ev.stack)
            if len(started) == 1:
                _thread.interrupt_main()  # Ctrl-C while the first stack runs

    with pytest.raises(KeyboardInterrupt):
        e.apply(plan, on_event=on_event)
    assert len(started) == 1, started
    states = {s.name: s.drift for s in e.status(specs)[0].stacks}
    assert sorted(states.values()) == ["inSync", "missing"], states
    assert _lock_table_empty(emulator), "locks released after the interrupt"

    report = e.apply(specs)
    outcomes = sorted(s.outcome for s in report.stacks)
    assert outcomes == ["created", "unchanged"], report


def test_asyncio_cancel_stops_cleanly(emulator: str) -> None:
    async def run() -> None:
        e = harmonix.AsyncEngine(
            endpoint_url=emulator, caller="pytest", poll_interval=(0.02, 0.2), concurrency=1
        )
        specs = two_providers()
        plan = await e.plan(specs)
        loop = asyncio.get_running_loop()
        holder: List[asyncio.Task[harmonix.ApplyReport]] = []

        def on_event(ev: harmonix.Event) -> None:
            if isinstance(ev, harmonix.Started) and holder:
                loop.call_soon_threadsafe(holder[0].cancel)

        task = asyncio.ensure_future(e.apply(plan, on_event=on_event))
        holder.append(task)
        with pytest.raises(asyncio.CancelledError):
            await task
        # The engine finishes the running stack and releases the locks.
        for _ in range(100):
            if _lock_table_empty(emulator):
                break
            await asyncio.sleep(0.05)
        assert _lock_table_empty(emulator)
        status = await e.status(specs)
        assert "missing" in [s.drift for s in status[0].stacks]

    asyncio.run(run())


def _child(endpoint: str, queue: "multiprocessing.Queue[str]") -> None:
    try:
        e = harmonix.Engine(endpoint_url=endpoint, caller="child")
        queue.put(json.dumps([s.drift for t in e.status(orders()) for s in t.stacks]))
    except BaseException as exc:  # pragma: no cover - reported to the parent
        queue.put(f"error: {exc!r}")


@pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX")
def test_usable_after_fork(emulator: str) -> None:
    e = engine(emulator)
    assert e.status(orders())[0].stacks[0].drift == "missing"  # runtime in use
    ctx = multiprocessing.get_context("fork")
    queue: "multiprocessing.Queue[str]" = ctx.Queue()
    p = ctx.Process(target=_child, args=(emulator, queue))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    assert queue.get(timeout=5) == '["missing"]'


def test_example_script_provisions_and_prints_the_catalog(emulator: str, tmp_path: Path) -> None:
    env = dict(os.environ, HARMONIX_ENDPOINT_URL=emulator)
    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / "python" / "provision.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "AWSEnvironmentProvider payments-dev: vpc vpc-" in out.stdout
    assert "AWSEnvironmentProvider orders-dev" in out.stdout
    assert (tmp_path / "catalog-info.yaml").exists()
