"""Specs, plans and the engine, in sync and asyncio forms.

Everything here delegates to the native module: parsing, validation,
rendering, planning and applying are the Rust core's."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from . import _harmonix as _native
from ._types import (
    ApplyReport,
    CatalogResult,
    Event,
    PlannedStack,
    PlanSummary,
    Stack,
    TargetPlan,
    TargetStatus,
    ValidationIssue,
    parse_event,
)

__all__ = [
    "Specs",
    "Plan",
    "Engine",
    "AsyncEngine",
    "EventCallback",
    "load",
    "loads",
    "from_dict",
    "validate",
    "schema",
    "render",
    "version",
]

PathLike = Union[str, "os.PathLike[str]"]
EventCallback = Callable[[Event], None]
SpecSource = Union[PathLike, Mapping[str, Any]]


class Specs:
    """Validated spec files: what the engine plans, applies and describes.

    Make them with :func:`load` (files), :func:`loads` (YAML text) or
    :func:`from_dict`; combine with ``+``. Invalid input raises
    :class:`harmonix.ValidationError` listing every problem with its field
    path."""

    __slots__ = ("_native",)

    def __init__(self, native: _native.SpecSet) -> None:
        self._native = native

    def __len__(self) -> int:
        return len(self._native)

    def __add__(self, other: "Specs") -> "Specs":
        return Specs(_native.SpecSet.concat([self._native, other._native]))

    def __repr__(self) -> str:
        return f"Specs({', '.join(self.origins)})"

    @property
    def origins(self) -> List[str]:
        """Where each spec came from (file names, ``<string>``, ``<dict>``)."""
        return self._native.origins()

    def stacks(self) -> List[Stack]:
        """Every stack the specs render to, with its template."""
        return [Stack.from_json(s) for s in json.loads(self._native.stacks_json())]

    def render(self, out_dir: PathLike) -> List[Path]:
        """Write each stack's template and parameters (and a manifest) into
        ``out_dir``; the files written. Same specs, same bytes."""
        return [Path(p) for p in self._native.render(os.fspath(out_dir))]

    def entities(self) -> List[Dict[str, Any]]:
        """The catalog entities before deployment (values from the names
        the providers derive)."""
        result: List[Dict[str, Any]] = json.loads(self._native.entities_json())
        return result

    def to_json(self) -> str:
        """The specs as JSON (as a plan file embeds them)."""
        return self._native.to_json()


def load(*paths: PathLike) -> Specs:
    """Load and validate spec files (YAML)."""
    if not paths:
        raise TypeError("load() needs at least one path")
    return Specs(_native.SpecSet.from_paths([os.fspath(p) for p in paths]))


def loads(text: str, origin: str = "<string>") -> Specs:
    """Parse and validate a spec from YAML text."""
    return Specs(_native.SpecSet.from_yaml(text, origin))


def from_dict(data: Mapping[str, Any], origin: str = "<dict>") -> Specs:
    """Validate a spec given as a dict (the YAML document's structure)."""
    return Specs(_native.SpecSet.from_json(json.dumps(data), origin))


def validate(source: SpecSource) -> List[ValidationIssue]:
    """Every problem of a spec, each with its field path; empty when valid.

    ``source`` is a path (``str`` naming an existing file, or a
    ``PathLike``), YAML text (any other ``str``) or a dict. A file that
    cannot be read raises :class:`harmonix.FileError`."""
    if isinstance(source, Mapping):
        try:
            from_dict(source)
        except _native.ValidationError as e:
            return [ValidationIssue.from_tuple(t) for t in getattr(e, "errors", [])]
        return []
    if isinstance(source, os.PathLike) or (
        isinstance(source, str) and "\n" not in source and os.path.isfile(source)
    ):
        path = os.fspath(source)
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as e:
            err = _native.FileError(f"cannot read spec file {path}: {e}")
            raise err from e
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            return [ValidationIssue("", None, f"{path}: spec is not valid UTF-8 (byte {e.start})")]
        return [ValidationIssue.from_tuple(t) for t in _native.problems(text, path)]
    return [ValidationIssue.from_tuple(t) for t in _native.problems(str(source), "<string>")]


def schema() -> Dict[str, Any]:
    """The JSON Schema of the spec format (for editors and forms)."""
    result: Dict[str, Any] = json.loads(_native.schema_json())
    return result


def render(specs: Specs, out_dir: PathLike) -> List[Path]:
    """Write the specs' templates and parameters into ``out_dir``."""
    return specs.render(out_dir)


def version() -> str:
    """The Harmonix version."""
    return _native.version()


class Plan:
    """A reviewed plan: what applying would do, per target and stack.

    Save it with :meth:`save` and apply exactly these change sets later;
    :meth:`load` checks the file was not modified."""

    __slots__ = ("_native",)

    def __init__(self, native: _native.Plan) -> None:
        self._native = native

    @classmethod
    def load(cls, path: PathLike) -> "Plan":
        """Read a plan file (raises InvalidPlanError when modified)."""
        return cls(_native.Plan.load(os.fspath(path)))

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        """Read a plan file's text."""
        return cls(_native.Plan.from_json(text))

    def save(self, path: PathLike) -> None:
        """Write the plan file atomically."""
        self._native.save(os.fspath(path))

    def to_json(self) -> str:
        """The plan file's text."""
        return self._native.to_json()

    def diff(self, color: bool = False) -> str:
        """A Terraform-like diff (ANSI colors with ``color``)."""
        return self._native.diff(color)

    @property
    def kind(self) -> str:
        """``deploy`` or ``destroy``."""
        return self._native.kind()

    @property
    def is_noop(self) -> bool:
        """Whether nothing would change."""
        return self._native.is_noop()

    @property
    def content_hash(self) -> str:
        return self._native.content_hash()

    @property
    def summary(self) -> PlanSummary:
        return PlanSummary.from_json(json.loads(self._native.summary_json()))

    @property
    def targets(self) -> List[TargetPlan]:
        return [TargetPlan.from_json(t) for t in json.loads(self._native.targets_json())]

    @property
    def stacks(self) -> List[PlannedStack]:
        return [s for t in self.targets for s in t.stacks]

    def __repr__(self) -> str:
        s = self.summary
        return (
            f"Plan({self.kind}: {s.add} to add, {s.change} to change, "
            f"{s.destroy} to destroy; {s.stacks_to_change} of "
            f"{s.stacks_to_change + s.stacks_unchanged} stacks)"
        )


def _callback(on_event: Optional[EventCallback]) -> Optional[Callable[[str], None]]:
    if on_event is None:
        return None
    cb = on_event

    def forward(text: str) -> None:
        cb(parse_event(text))

    return forward


def _checked(report: ApplyReport, raise_on_failure: bool) -> ApplyReport:
    if raise_on_failure and not report.succeeded:
        failed = next((s for s in report.stacks if s.outcome == "failed"), None)
        if failed is not None:
            stack, reason = failed.name, failed.reason or failed.status or "failed"
            message = f"stack `{stack}` failed: {reason}"
        elif report.catalog_error:
            stack, reason = None, report.catalog_error
            message = f"the catalog could not be completed: {reason}"
        else:
            other = next((s for s in report.stacks if not s.ok), None)
            stack = other.name if other else None
            reason = f"{other.outcome}" if other else "not every stack succeeded"
            message = f"stack `{stack}` was {reason}"
        err = _native.StackFailedError(message)
        err.code = "HARMONIX_STACK_FAILED"
        err.stack = stack
        err.reason = reason
        err.report = report
        raise err
    return report


class _Options:
    """Keyword options shared by :class:`Engine` and :class:`AsyncEngine`."""

    @staticmethod
    def native(
        *,
        region: Optional[str],
        endpoint_url: Optional[str],
        pipeline_role: Optional[str],
        external_id: Optional[str],
        source_identity: Optional[str],
        session_duration: int,
        caller: Optional[str],
        max_attempts: Optional[int],
        concurrency: int,
        api_rate: float,
        api_burst: int,
        lock: bool,
        lock_lease: float,
        lock_table: Optional[str],
        audit: bool,
        timeout: float,
        poll_interval: Tuple[float, float],
    ) -> _native.Engine:
        return _native.Engine(
            region=region,
            endpoint_url=endpoint_url,
            pipeline_role=pipeline_role,
            external_id=external_id,
            source_identity=source_identity,
            session_duration=session_duration,
            caller=caller,
            max_attempts=max_attempts,
            concurrency=concurrency,
            api_rate=api_rate,
            api_burst=api_burst,
            lock=lock,
            lock_lease=lock_lease,
            lock_table=lock_table,
            audit=audit,
            timeout=timeout,
            poll_interval=poll_interval,
        )


_ENGINE_DOC = """

    Options (all keyword-only):

    - ``region``: region of the base credentials (default: the standard AWS
      configuration, ``AWS_REGION``); targets use their spec's region.
    - ``endpoint_url``: endpoint for every AWS service, e.g. a local
      emulator (default: the standard configuration, ``AWS_ENDPOINT_URL``).
    - ``pipeline_role``: role assumed with the base credentials before each
      environment's ``environmentRole``.
    - ``external_id``, ``source_identity``: passed when assuming roles (the
      external id is a secret: never shown).
    - ``session_duration``: role session length in seconds (900-43200);
      credentials are refreshed before they expire.
    - ``caller``: who runs Harmonix, in session names and audit records.
    - ``max_attempts``: attempts per AWS request (default: standard chain).
    - ``concurrency``: stacks planned or executed at once per target.
    - ``api_rate``, ``api_burst``: AWS requests per second per account and
      region, shared by everything this engine does (retries included).
    - ``lock``, ``lock_lease``, ``lock_table``: the environment lock.
    - ``audit``: write audit records to each environment's audit table.
    - ``timeout``: limit of an apply, in seconds.
    - ``poll_interval``: first and largest delay between status polls.
    """


class Engine:
    """Plans and applies environments (blocking calls that release the GIL;
    Ctrl-C stops starting new stacks, lets running ones finish, releases
    the locks and raises KeyboardInterrupt)."""

    __doc__ = (__doc__ or "") + _ENGINE_DOC

    def __init__(
        self,
        *,
        region: Optional[str] = None,
        endpoint_url: Optional[str] = None,
        pipeline_role: Optional[str] = None,
        external_id: Optional[str] = None,
        source_identity: Optional[str] = None,
        session_duration: int = 3600,
        caller: Optional[str] = None,
        max_attempts: Optional[int] = None,
        concurrency: int = 4,
        api_rate: float = 10.0,
        api_burst: int = 20,
        lock: bool = True,
        lock_lease: float = 300.0,
        lock_table: Optional[str] = None,
        audit: bool = True,
        timeout: float = 3600.0,
        poll_interval: Tuple[float, float] = (0.5, 10.0),
    ) -> None:
        self._native = _Options.native(
            region=region,
            endpoint_url=endpoint_url,
            pipeline_role=pipeline_role,
            external_id=external_id,
            source_identity=source_identity,
            session_duration=session_duration,
            caller=caller,
            max_attempts=max_attempts,
            concurrency=concurrency,
            api_rate=api_rate,
            api_burst=api_burst,
            lock=lock,
            lock_lease=lock_lease,
            lock_table=lock_table,
            audit=audit,
            timeout=timeout,
            poll_interval=poll_interval,
        )

    def plan(
        self,
        specs: Specs,
        *,
        destroy: bool = False,
        delete_data: bool = False,
        delete_production_data: bool = False,
        on_event: Optional[EventCallback] = None,
    ) -> Plan:
        """Plan the specs' environments (or their deletion; ``delete_data``:
        with what the templates keep, see ``destroy``)."""
        return Plan(
            self._native.plan(
                specs._native,
                destroy=destroy,
                delete_data=delete_data,
                delete_production_data=delete_production_data,
                on_event=_callback(on_event),
            )
        )

    def apply(
        self,
        plan: Union[Plan, Specs],
        *,
        catalog_path: Optional[PathLike] = None,
        on_event: Optional[EventCallback] = None,
        raise_on_failure: bool = True,
    ) -> ApplyReport:
        """Apply a reviewed plan (or plan and apply specs without review),
        then write the catalog to ``catalog_path`` when given. Raises
        StackFailedError when a stack failed (``raise_on_failure``)."""
        if isinstance(plan, Specs):
            plan = self.plan(plan, on_event=on_event)
        text = self._native.apply(
            plan._native,
            catalog_path=None if catalog_path is None else os.fspath(catalog_path),
            on_event=_callback(on_event),
        )
        return _checked(ApplyReport.from_json(text), raise_on_failure)

    def destroy(
        self,
        specs: Specs,
        *,
        delete_data: bool = False,
        delete_production_data: bool = False,
        on_event: Optional[EventCallback] = None,
        raise_on_failure: bool = True,
    ) -> ApplyReport:
        """Delete the specs' stacks, dependents first. What the templates
        keep (audit table, key, log groups, buckets, secrets, the database's
        final snapshot) stays and is listed in ``report.kept``;
        ``delete_data`` deletes it too (production environments also need
        ``delete_production_data``)."""
        plan = self.plan(
            specs,
            destroy=True,
            delete_data=delete_data,
            delete_production_data=delete_production_data,
            on_event=on_event,
        )
        return self.apply(plan, on_event=on_event, raise_on_failure=raise_on_failure)

    def discard(self, plan: Plan) -> int:
        """Delete the change sets of a plan that will not be applied."""
        return self._native.discard(plan._native)

    def status(self, specs: Specs) -> List[TargetStatus]:
        """Each stack's state and whether it matches its spec."""
        return TargetStatus.list_from_json(self._native.status(specs._native))

    def write_catalog(
        self,
        specs: Specs,
        path: Optional[PathLike] = None,
        *,
        on_event: Optional[EventCallback] = None,
    ) -> Tuple[List[Dict[str, Any]], Optional[CatalogResult]]:
        """The entities of the deployed environments, merged into ``path``
        when given."""
        text = self._native.write_catalog(
            specs._native,
            None if path is None else os.fspath(path),
            on_event=_callback(on_event),
        )
        d = json.loads(text)
        return list(d.get("entities") or []), CatalogResult.from_json(d.get("catalog"))

    def bootstrap(self, specs: Specs) -> List[str]:
        """Create the lock table in every target account/region."""
        return self._native.bootstrap(specs._native)

    @property
    def request_counts(self) -> Dict[str, int]:
        """AWS requests sent so far, by operation."""
        return dict(self._native.request_counts())


class AsyncEngine:
    """The :class:`Engine` for asyncio: every long call is a coroutine on
    Harmonix's own runtime; cancelling it stops the engine cleanly."""

    __doc__ = (__doc__ or "") + _ENGINE_DOC

    def __init__(
        self,
        *,
        region: Optional[str] = None,
        endpoint_url: Optional[str] = None,
        pipeline_role: Optional[str] = None,
        external_id: Optional[str] = None,
        source_identity: Optional[str] = None,
        session_duration: int = 3600,
        caller: Optional[str] = None,
        max_attempts: Optional[int] = None,
        concurrency: int = 4,
        api_rate: float = 10.0,
        api_burst: int = 20,
        lock: bool = True,
        lock_lease: float = 300.0,
        lock_table: Optional[str] = None,
        audit: bool = True,
        timeout: float = 3600.0,
        poll_interval: Tuple[float, float] = (0.5, 10.0),
    ) -> None:
        self._native = _Options.native(
            region=region,
            endpoint_url=endpoint_url,
            pipeline_role=pipeline_role,
            external_id=external_id,
            source_identity=source_identity,
            session_duration=session_duration,
            caller=caller,
            max_attempts=max_attempts,
            concurrency=concurrency,
            api_rate=api_rate,
            api_burst=api_burst,
            lock=lock,
            lock_lease=lock_lease,
            lock_table=lock_table,
            audit=audit,
            timeout=timeout,
            poll_interval=poll_interval,
        )

    async def plan(
        self,
        specs: Specs,
        *,
        destroy: bool = False,
        delete_data: bool = False,
        delete_production_data: bool = False,
        on_event: Optional[EventCallback] = None,
    ) -> Plan:
        """Plan the specs' environments (or their deletion)."""
        native: _native.Plan = await self._native.plan_async(
            specs._native,
            destroy=destroy,
            delete_data=delete_data,
            delete_production_data=delete_production_data,
            on_event=_callback(on_event),
        )
        return Plan(native)

    async def apply(
        self,
        plan: Union[Plan, Specs],
        *,
        catalog_path: Optional[PathLike] = None,
        on_event: Optional[EventCallback] = None,
        raise_on_failure: bool = True,
    ) -> ApplyReport:
        """Apply a reviewed plan (or plan and apply specs)."""
        if isinstance(plan, Specs):
            plan = await self.plan(plan, on_event=on_event)
        text: str = await self._native.apply_async(
            plan._native,
            catalog_path=None if catalog_path is None else os.fspath(catalog_path),
            on_event=_callback(on_event),
        )
        return _checked(ApplyReport.from_json(text), raise_on_failure)

    async def destroy(
        self,
        specs: Specs,
        *,
        delete_data: bool = False,
        delete_production_data: bool = False,
        on_event: Optional[EventCallback] = None,
        raise_on_failure: bool = True,
    ) -> ApplyReport:
        """Delete the specs' stacks, dependents first (see the blocking
        ``destroy``)."""
        plan = await self.plan(
            specs,
            destroy=True,
            delete_data=delete_data,
            delete_production_data=delete_production_data,
            on_event=on_event,
        )
        return await self.apply(plan, on_event=on_event, raise_on_failure=raise_on_failure)

    async def status(self, specs: Specs) -> List[TargetStatus]:
        """Each stack's state and whether it matches its spec."""
        text: str = await self._native.status_async(specs._native)
        return TargetStatus.list_from_json(text)

    async def write_catalog(
        self,
        specs: Specs,
        path: Optional[PathLike] = None,
        *,
        on_event: Optional[EventCallback] = None,
    ) -> Tuple[List[Dict[str, Any]], Optional[CatalogResult]]:
        """The entities of the deployed environments, merged into ``path``."""
        text: str = await self._native.write_catalog_async(
            specs._native,
            None if path is None else os.fspath(path),
            on_event=_callback(on_event),
        )
        d = json.loads(text)
        return list(d.get("entities") or []), CatalogResult.from_json(d.get("catalog"))

    @property
    def request_counts(self) -> Dict[str, int]:
        """AWS requests sent so far, by operation."""
        return dict(self._native.request_counts())
