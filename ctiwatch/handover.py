"""Any worker takes people's actions: a worker that is not the active monitor hands an action
(a console form, an API call, a Twilio webhook) to the active monitor through the database, and
answers the person with the active monitor's result (docs/architecture.md, "Scaling past one
machine").

The worker the person reached has already done everything that needs the request: the login,
the CSRF token, the Host allow-list, the role, the Twilio signature over the public URL and the
replay check. What it hands over is the action, the actor and the source address, no request
and no header, so nothing a stranger sends is trusted by the active monitor: only a row written
by an authenticated worker into the database all workers share.

:class:`Handovers` on the taking side writes the row (``store.handovers``) and waits for it to
be done; when no active monitor applied it by ``wait`` (a takeover, the database away) it
withdraws it and the person gets 503 with ``Retry-After``: never "try again" for an action that
was applied, never applied after "try again". On the active monitor :meth:`Handovers.serve`
reads the pending rows every ``poll`` and applies each in its own step, which marks the row done
in its fenced transaction: applied once, whichever worker leads.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from ctiwatch.clock import Clock
from ctiwatch.leadership import Leadership
from ctiwatch.storage import Store
from ctiwatch.storage.handovers import DONE, Handover
from ctiwatch.storage.leader import Fenced
from ctiwatch.web.service import ServiceError

log = logging.getLogger("ctiwatch.handover")

WAIT = timedelta(seconds=10)  # how long a person waits for the active monitor at most
POLL = timedelta(seconds=0.1)  # how often the waiting worker looks at its handover
SERVE_POLL = timedelta(seconds=0.2)  # how often the active monitor looks for handovers
RETRY_AFTER = 5  # seconds, in the 503 of an action no monitor took in time

# The active monitor's side: apply one handover (its step marks it done).
Apply = Callable[[Handover], Awaitable[None]]


def no_monitor(verb: str, waited: timedelta) -> ServiceError:
    """503 for an action no active monitor took in time: nothing changed."""
    error = ServiceError(
        f"could not {verb} it now: no worker is the active monitor at the moment (a takeover "
        f"takes a few seconds; waited {waited.total_seconds():g}s), so nothing changed; "
        "try again in a moment",
        status=503,
    )
    error.retry_after = RETRY_AFTER
    return error


def error_result(exc: ServiceError) -> dict[str, Any]:
    """A refusal as stored in the handover's result."""
    return {"error": {"message": exc.message, "field": exc.field, "status": exc.status}}


def error_from(result: dict[str, Any]) -> ServiceError | None:
    """The refusal a handover's result holds, if it holds one."""
    error = result.get("error")
    if not isinstance(error, dict):
        return None
    field = error.get("field")
    status = error.get("status")
    return ServiceError(
        str(error.get("message") or "refused"),
        field if isinstance(field, str) else None,
        status if isinstance(status, int) and 400 <= status <= 599 else 409,
    )


class Handovers:
    """Both sides of the hand-over, for one worker."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        leadership: Leadership,
        *,
        wait: timedelta = WAIT,
        poll: timedelta = POLL,
        serve_poll: timedelta = SERVE_POLL,
    ) -> None:
        self._store = store
        self._clock = clock
        self._leadership = leadership
        self.wait = wait
        self.poll = poll
        self.serve_poll = serve_poll
        self.handed = 0  # actions this worker handed over (taken by the active monitor)
        self.withdrawn = 0  # ... and withdrawn, no monitor having taken them in time

    @property
    def needed(self) -> bool:
        """Whether an action taken in here must be handed over: another worker leads."""
        return not self._leadership.leading

    async def forward(self, kind: str, args: dict[str, Any], verb: str) -> dict[str, Any]:
        """Hand action ``kind`` (``args`` as the console method takes them) to the active
        monitor and wait for its result (``{"incidents": [...]}``, or the refusal it answered,
        raised here as :class:`ServiceError`). 503 with ``Retry-After`` when no monitor took
        it within :attr:`wait` (withdrawn: it will not be applied)."""
        now = self._clock.now()
        deadline = now + self.wait
        try:
            id = await self._store.handovers.add(
                kind, args, origin=self._leadership.holder, at=now, deadline=deadline
            )
        except Exception as exc:
            log.warning("an action could not be handed over", extra={"error": str(exc)[:300]})
            raise ServiceError(
                f"could not {verb} it now: the database did not take it, so nothing changed; "
                "try again in a moment",
                status=503,
            ) from None
        log.info("action handed to the active monitor", extra={"handover": id, "kind": kind})
        unread = False
        while True:
            try:
                row = await self._store.handovers.get(id)
            except Exception as exc:  # the database away for a moment: look again
                if not unread:  # one line per wait
                    log.warning(
                        "handover not read", extra={"handover": id, "error": str(exc)[:300]}
                    )
                unread = True
                row = None
            if row is not None and row.status == DONE and row.result is not None:
                self.handed += 1
                refused = error_from(row.result)
                if refused is not None:
                    raise refused
                return row.result
            if self._clock.now() >= deadline:
                try:
                    withdrawn = await self._store.handovers.withdraw(id, self._clock.now())
                except Exception as exc:
                    # Not known to be withdrawn: the monitor may still apply it; look again.
                    log.warning(
                        "handover not withdrawn", extra={"handover": id, "error": str(exc)[:300]}
                    )
                    withdrawn = False
                    if self._clock.now() >= deadline + self.wait:
                        raise no_monitor(verb, self.wait) from None
                if withdrawn:
                    self.withdrawn += 1
                    log.warning(
                        "no active monitor took a handed-over action in time; withdrawn",
                        extra={"handover": id, "kind": kind},
                    )
                    raise no_monitor(verb, self.wait)
                continue  # done meanwhile: read its result
            await self._clock.sleep(self.poll.total_seconds())

    async def serve(self, apply: Apply) -> None:
        """While this worker is the active monitor (cancelled when it stops leading): apply
        the pending handovers, oldest first, every :attr:`serve_poll`."""
        failing = False
        while True:
            try:
                pending = await self._store.handovers.pending(self._clock.now())
                failing = False
            except Exception as exc:
                if not failing:  # one line while the database is away
                    log.warning("handovers not read", extra={"error": str(exc)[:300]})
                failing = True
                pending = []
            for handover in pending:
                if not self._leadership.leading:
                    return
                await apply(handover)
            if len(pending) < 50:
                await self._clock.sleep(self.serve_poll.total_seconds())

    async def refuse(self, handover: Handover, exc: ServiceError) -> None:
        """Answer ``handover`` with refusal ``exc`` (nothing changed)."""
        await self.answer(handover, error_result(exc))

    async def answer(self, handover: Handover, result: dict[str, Any]) -> None:
        """Answer ``handover`` with ``result`` unless its step did already, fenced: a worker
        that no longer leads answers nothing, and the next active monitor applies it."""
        fence = self._leadership.fence()
        if fence is None:
            return
        try:
            await self._store.handovers.complete(
                handover.id, result, self._clock.now(), self._leadership.holder, fence=fence
            )
        except Fenced:
            self._leadership.fenced("a handover's answer was refused by the fence")
        except Exception as exc2:
            log.warning(
                "handover not answered", extra={"handover": handover.id, "error": str(exc2)[:300]}
            )
