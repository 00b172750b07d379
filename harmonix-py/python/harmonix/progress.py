"""Progress display for long calls: a tqdm bar that counts finished stacks.

    from harmonix.progress import TqdmProgress

    with TqdmProgress(total=len(plan.stacks)) as progress:
        engine.apply(plan, on_event=progress)

Needs ``tqdm`` (``pip install harmonix[progress]``)."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Optional, Type

from ._types import (
    Event,
    Finished,
    ResourceProgress,
    Skipped,
    StackDone,
    StackFailed,
    Started,
    Warning,
)

__all__ = ["TqdmProgress"]


class TqdmProgress:
    """An ``on_event`` callback driving a tqdm bar: one step per stack done,
    failed or skipped; resource progress as the bar's postfix; failures and
    warnings written above the bar."""

    def __init__(self, total: Optional[int] = None, **tqdm_kwargs: Any) -> None:
        try:
            from tqdm.auto import tqdm  # type: ignore[import-untyped, unused-ignore]
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ImportError(
                "TqdmProgress needs tqdm: pip install 'harmonix[progress]'"
            ) from e
        tqdm_kwargs.setdefault("unit", "stack")
        self._tqdm = tqdm
        self._bar: Any = tqdm(total=total, **tqdm_kwargs)

    def __call__(self, event: Event) -> None:
        bar = self._bar
        if isinstance(event, Started):
            bar.set_postfix_str(f"{event.stack}: {event.action}")
        elif isinstance(event, ResourceProgress):
            bar.set_postfix_str(f"{event.stack}: {event.logical_id} {event.status}")
        elif isinstance(event, StackDone):
            bar.update(1)
        elif isinstance(event, StackFailed):
            self._tqdm.write(f"✗ {event.stack}: {event.reason}")
            bar.update(1)
        elif isinstance(event, Skipped):
            self._tqdm.write(f"- {event.stack}: skipped ({event.because})")
            bar.update(1)
        elif isinstance(event, Warning):
            self._tqdm.write(f"warning: {event.message}")
        elif isinstance(event, Finished):
            bar.set_postfix_str(
                f"{event.succeeded} ok, {event.failed} failed, {event.skipped} skipped"
            )

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> "TqdmProgress":
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()
