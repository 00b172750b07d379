"""Typed values of the Harmonix API: issues, plans, reports, status and
progress events. All are frozen dataclasses built from the JSON the native
module returns; none holds logic of its own."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

__all__ = [
    "ValidationIssue",
    "ResourceChange",
    "PlannedStack",
    "TargetPlan",
    "PlanSummary",
    "StackResult",
    "TargetResult",
    "CatalogResult",
    "ApplyReport",
    "StackState",
    "StackStatus",
    "TargetStatus",
    "Stack",
    "Event",
    "Planned",
    "Waiting",
    "ChangeSetReady",
    "Started",
    "ResourceProgress",
    "StackDone",
    "StackFailed",
    "Skipped",
    "Locked",
    "CatalogWritten",
    "Warning",
    "Finished",
    "UnknownEvent",
    "parse_event",
]


def _s(d: Mapping[str, Any], key: str) -> str:
    v = d.get(key)
    return v if isinstance(v, str) else ""


def _os(d: Mapping[str, Any], key: str) -> Optional[str]:
    v = d.get(key)
    return v if isinstance(v, str) else None


def _i(d: Mapping[str, Any], key: str) -> int:
    v = d.get(key)
    return v if isinstance(v, int) else 0


@dataclass(frozen=True)
class ValidationIssue:
    """One problem in a spec: its field path (``providers[0].vpc.cidr``),
    the value as written (or None) and what is wrong and allowed."""

    path: str
    value: Optional[str]
    message: str

    @classmethod
    def from_tuple(cls, t: Tuple[str, Optional[str], str]) -> "ValidationIssue":
        return cls(path=t[0], value=t[1], message=t[2])


@dataclass(frozen=True)
class ResourceChange:
    """One resource change of a change set."""

    action: str  # add | modify | remove | import | dynamic
    logical_id: str
    resource_type: str
    replacement: Optional[str] = None  # true | conditional | false
    properties: Tuple[str, ...] = ()
    rollout: Optional[str] = None  # how an update policy replaces instances

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "ResourceChange":
        return cls(
            action=_s(d, "action"),
            logical_id=_s(d, "logicalId"),
            resource_type=_s(d, "resourceType"),
            replacement=_os(d, "replacement"),
            properties=tuple(str(p) for p in d.get("properties", [])),
            rollout=_os(d, "rollout"),
        )


@dataclass(frozen=True)
class PlannedStack:
    """What a plan does with one stack."""

    name: str
    action: str  # noOp | create | update | delete | recreate | resumeRollback
    depends_on: Tuple[str, ...]
    hash: str
    change_set_id: Optional[str]
    changes: Tuple[ResourceChange, ...]
    status_at_planning: Optional[str]
    last_updated_at_planning: Optional[str]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "PlannedStack":
        observed = d.get("observed") or {}
        return cls(
            name=_s(d, "name"),
            action=_s(d, "action"),
            depends_on=tuple(str(x) for x in d.get("dependsOn", [])),
            hash=_s(d, "hash"),
            change_set_id=_os(d, "changeSetId"),
            changes=tuple(ResourceChange.from_json(c) for c in d.get("changes", [])),
            status_at_planning=_os(observed, "status"),
            last_updated_at_planning=_os(observed, "lastUpdated"),
        )


@dataclass(frozen=True)
class TargetPlan:
    """The plan of one target: an account, region and environment role."""

    account: str
    region: str
    role_arn: str
    providers: Tuple[str, ...]
    stacks: Tuple[PlannedStack, ...]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "TargetPlan":
        plan = d.get("plan") or {}
        return cls(
            account=_s(plan, "account"),
            region=_s(plan, "region"),
            role_arn=_s(d, "roleArn"),
            providers=tuple(str(x) for x in d.get("providers", [])),
            stacks=tuple(PlannedStack.from_json(s) for s in plan.get("stacks", [])),
        )


@dataclass(frozen=True)
class PlanSummary:
    """Counts of a plan: stacks to change, resources to add/change/destroy."""

    stacks_to_change: int
    stacks_unchanged: int
    add: int
    change: int
    destroy: int

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "PlanSummary":
        return cls(
            stacks_to_change=_i(d, "stacksToChange"),
            stacks_unchanged=_i(d, "stacksUnchanged"),
            add=_i(d, "add"),
            change=_i(d, "change"),
            destroy=_i(d, "destroy"),
        )


@dataclass(frozen=True)
class StackResult:
    """What happened to one stack in an apply."""

    name: str
    action: str
    outcome: str  # created | updated | deleted | unchanged | failed | skipped | cancelled
    status: Optional[str] = None
    reason: Optional[str] = None  # failed: why; skipped: the stack that did not succeed

    @property
    def ok(self) -> bool:
        return self.outcome in ("created", "updated", "deleted", "unchanged")

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "StackResult":
        return cls(
            name=_s(d, "name"),
            action=_s(d, "action"),
            outcome=_s(d, "outcome"),
            status=_os(d, "status"),
            reason=_os(d, "reason") or _os(d, "because"),
        )


@dataclass(frozen=True)
class TargetResult:
    """The stacks of one target after an apply."""

    account: str
    region: str
    role_arn: str
    stacks: Tuple[StackResult, ...]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "TargetResult":
        return cls(
            account=_s(d, "account"),
            region=_s(d, "region"),
            role_arn=_s(d, "roleArn"),
            stacks=tuple(StackResult.from_json(s) for s in d.get("stacks", [])),
        )


@dataclass(frozen=True)
class CatalogResult:
    """The catalog file written (``outcome``: created, updated, unchanged)."""

    path: str
    outcome: str

    @classmethod
    def from_json(cls, d: Optional[Mapping[str, Any]]) -> Optional["CatalogResult"]:
        if not d:
            return None
        return cls(path=_s(d, "path"), outcome=_s(d, "outcome"))


@dataclass(frozen=True)
class KeptResource:
    """A resource a destroyed stack kept (its template's DeletionPolicy:
    ``Retain``, or ``Snapshot``: the resource's final snapshot is kept)."""

    stack: str
    logical_id: str
    resource_type: str
    physical_id: str
    policy: str

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "KeptResource":
        return cls(
            stack=_s(d, "stack"),
            logical_id=_s(d, "logicalId"),
            resource_type=_s(d, "resourceType"),
            physical_id=_s(d, "physicalId"),
            policy=_s(d, "policy"),
        )


@dataclass(frozen=True)
class ApplyReport:
    """The result of an apply or destroy."""

    kind: str  # deploy | destroy
    succeeded: bool
    targets: Tuple[TargetResult, ...]
    outputs: Dict[str, Dict[str, str]]
    entities: List[Dict[str, Any]]
    catalog: Optional[CatalogResult]
    warnings: Tuple[str, ...]
    catalog_error: Optional[str]
    requests: Dict[str, int]
    kept: Tuple[KeptResource, ...] = ()

    @property
    def stacks(self) -> Tuple[StackResult, ...]:
        return tuple(s for t in self.targets for s in t.stacks)

    def stack(self, name: str) -> Optional[StackResult]:
        return next((s for s in self.stacks if s.name == name), None)

    @classmethod
    def from_json(cls, text: str) -> "ApplyReport":
        top = json.loads(text)
        d = top.get("report") or {}
        return cls(
            kind=_s(d, "kind"),
            succeeded=bool(top.get("succeeded")),
            targets=tuple(TargetResult.from_json(t) for t in d.get("targets", [])),
            outputs={str(k): dict(v) for k, v in (d.get("outputs") or {}).items()},
            entities=list(d.get("entities") or []),
            catalog=CatalogResult.from_json(d.get("catalog")),
            warnings=tuple(str(w) for w in d.get("warnings", [])),
            catalog_error=_os(d, "catalogError"),
            requests={str(k): int(v) for k, v in (d.get("requests") or {}).items()},
            kept=tuple(KeptResource.from_json(k) for k in d.get("kept", [])),
        )


@dataclass(frozen=True)
class StackState:
    """A deployed stack as CloudFormation describes it."""

    name: str
    stack_id: str
    status: str
    status_reason: Optional[str]
    hash: Optional[str]
    last_updated: Optional[str]
    outputs: Dict[str, str]

    @classmethod
    def from_json(cls, d: Optional[Mapping[str, Any]]) -> Optional["StackState"]:
        if not d:
            return None
        return cls(
            name=_s(d, "name"),
            stack_id=_s(d, "stackId"),
            status=_s(d, "status"),
            status_reason=_os(d, "statusReason"),
            hash=_os(d, "hash"),
            last_updated=_os(d, "lastUpdated"),
            outputs={str(k): str(v) for k, v in (d.get("outputs") or {}).items()},
        )


@dataclass(frozen=True)
class StackStatus:
    """A defined stack's state and whether it matches its spec (``drift``:
    inSync, drifted or missing)."""

    name: str
    state: Optional[StackState]
    drift: str
    last_updated: Optional[str]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "StackStatus":
        return cls(
            name=_s(d, "name"),
            state=StackState.from_json(d.get("state")),
            drift=_s(d, "drift"),
            last_updated=_os(d, "lastUpdated"),
        )


@dataclass(frozen=True)
class TargetStatus:
    """The stacks of one account/region."""

    account: str
    region: str
    stacks: Tuple[StackStatus, ...]

    @classmethod
    def list_from_json(cls, text: str) -> List["TargetStatus"]:
        return [
            cls(
                account=_s(t, "account"),
                region=_s(t, "region"),
                stacks=tuple(StackStatus.from_json(s) for s in t.get("stacks", [])),
            )
            for t in json.loads(text)
        ]


@dataclass(frozen=True)
class Stack:
    """A rendered stack: its template and parameters."""

    name: str
    provider: str
    account: str
    region: str
    hash: str
    parameters: Dict[str, str]
    tags: Dict[str, str]
    depends_on: Tuple[str, ...]
    capabilities: Tuple[str, ...]
    template: Dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Stack":
        return cls(
            name=_s(d, "name"),
            provider=_s(d, "provider"),
            account=_s(d, "account"),
            region=_s(d, "region"),
            hash=_s(d, "hash"),
            parameters={str(k): str(v) for k, v in (d.get("parameters") or {}).items()},
            tags={str(k): str(v) for k, v in (d.get("tags") or {}).items()},
            depends_on=tuple(str(x) for x in d.get("dependsOn", [])),
            capabilities=tuple(str(x) for x in d.get("capabilities", [])),
            template=dict(d.get("template") or {}),
        )


# --- progress events ---------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    """A stack was planned."""

    stack: str
    action: str
    changes: int


@dataclass(frozen=True)
class Waiting:
    """Planning waits for a stack whose operation is still running."""

    stack: str
    status: str


@dataclass(frozen=True)
class ChangeSetReady:
    """A change set is ready for review."""

    stack: str
    change_set_id: str


@dataclass(frozen=True)
class Started:
    """Execution of a stack started."""

    stack: str
    action: str


@dataclass(frozen=True)
class ResourceProgress:
    """A resource of an in-flight stack changed status."""

    stack: str
    logical_id: str
    resource_type: str
    status: str
    reason: Optional[str]


@dataclass(frozen=True)
class StackDone:
    """A stack reached its target status."""

    stack: str
    status: str


@dataclass(frozen=True)
class StackFailed:
    """A stack failed."""

    stack: str
    status: Optional[str]
    reason: str


@dataclass(frozen=True)
class Skipped:
    """A stack was not executed: ``because`` did not succeed (or
    ``cancelled``)."""

    stack: str
    because: str


@dataclass(frozen=True)
class Locked:
    """An environment lock was taken."""

    lock: str


@dataclass(frozen=True)
class CatalogWritten:
    """The catalog file was written."""

    path: str
    outcome: str


@dataclass(frozen=True)
class Warning:  # noqa: A001 - the event's name in the engine
    """Something went wrong that does not stop the run."""

    message: str


@dataclass(frozen=True)
class Finished:
    """Applying finished."""

    succeeded: int
    failed: int
    skipped: int


@dataclass(frozen=True)
class UnknownEvent:
    """An event of a newer engine than this package knows."""

    kind: str
    data: Dict[str, Any]


Event = Union[
    Planned,
    Waiting,
    ChangeSetReady,
    Started,
    ResourceProgress,
    StackDone,
    StackFailed,
    Skipped,
    Locked,
    CatalogWritten,
    Warning,
    Finished,
    UnknownEvent,
]


def parse_event(text: str) -> Event:
    """The typed event of the engine's JSON event."""
    d: Dict[str, Any] = json.loads(text)
    kind = _s(d, "event")
    if kind == "planned":
        return Planned(_s(d, "stack"), _s(d, "action"), _i(d, "changes"))
    if kind == "waiting":
        return Waiting(_s(d, "stack"), _s(d, "status"))
    if kind == "changeSetReady":
        return ChangeSetReady(_s(d, "stack"), _s(d, "changeSetId"))
    if kind == "started":
        return Started(_s(d, "stack"), _s(d, "action"))
    if kind == "resourceProgress":
        return ResourceProgress(
            _s(d, "stack"),
            _s(d, "logicalId"),
            _s(d, "resourceType"),
            _s(d, "status"),
            _os(d, "reason"),
        )
    if kind == "stackDone":
        return StackDone(_s(d, "stack"), _s(d, "status"))
    if kind == "stackFailed":
        return StackFailed(_s(d, "stack"), _os(d, "status"), _s(d, "reason"))
    if kind == "skipped":
        return Skipped(_s(d, "stack"), _s(d, "because"))
    if kind == "locked":
        return Locked(_s(d, "lock"))
    if kind == "catalogWritten":
        return CatalogWritten(_s(d, "path"), _s(d, "outcome"))
    if kind == "warning":
        return Warning(_s(d, "message"))
    if kind == "finished":
        return Finished(_i(d, "succeeded"), _i(d, "failed"), _i(d, "skipped"))
    return UnknownEvent(kind, d)
