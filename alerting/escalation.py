"""Escalation: one step at a time, named after the SLA's support levels. Pure.

The chain is snapshotted when an incident opens (a config reload or rotation change later does
not change whom this incident pages):

1. ``first line``: the on-call numbers at the moment the incident opened (the rotation). The
   ``opened`` alerts already page them, so escalation starts with the step after.
2. the configured steps (``alerting.escalation``: name, ``after``, numbers), e.g. ``second line``.
3. ``third line``: CloudCTI itself: the report again to the support address and, for P1 inside
   support hours, a call to the support line (unless a configured step is already named so).

If nobody acknowledges, the next step is paged when its delay (counted from the previous page)
has passed: one step per due time, never several at once. ``after`` in config is the P1 delay;
P2 waits :data:`DELAY_FACTOR` times as long, P3 and P4 do not escalate (their response is due
in a working day, a page every few minutes would be noise).

Every scheduled step carries the generation of the state that scheduled it. Acknowledging
stops the chain and raising the priority restarts it; both bump the generation, so a step that
was already scheduled finds a newer generation and does nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from alerting.model import EscalationTarget, RoutingPolicy, Trigger, TriggerKind

FIRST_LINE = "first line"
SECOND_LINE = "second line"
THIRD_LINE = "third line"

DEFAULT_STEP_DELAY = timedelta(minutes=10)
DELAY_FACTOR: Mapping[int, float | None] = {1: 1.0, 2: 3.0, 3: None, 4: None}


@dataclass(frozen=True, slots=True)
class EscalationStep:
    after: timedelta  # wait after the previous step was paged (P1; see DELAY_FACTOR)
    target: EscalationTarget

    @property
    def name(self) -> str:
        return self.target.name


@dataclass(frozen=True, slots=True)
class EscalationChain:
    steps: tuple[EscalationStep, ...]


def build_chain(
    first_line: Sequence[str],
    configured: Iterable[tuple[str, timedelta, Sequence[str]]],
    policy: RoutingPolicy,
    third_line_after: timedelta | None = None,
) -> EscalationChain:
    """The chain for an incident opening now; ``configured`` is ``(name, after, numbers)``."""
    steps = [EscalationStep(timedelta(0), EscalationTarget(FIRST_LINE, tuple(first_line)))]
    for name, after, numbers in configured:
        steps.append(EscalationStep(after, EscalationTarget(name, tuple(numbers))))
    if not any(step.name == THIRD_LINE for step in steps):
        delay = third_line_after or (steps[-1].after if len(steps) > 1 else DEFAULT_STEP_DELAY)
        cloudcti = EscalationTarget(
            THIRD_LINE, landlines=(policy.support_line,), email=policy.support_email
        )
        steps.append(EscalationStep(delay, cloudcti))
    return EscalationChain(tuple(steps))


@dataclass(frozen=True, slots=True)
class EscalationState:
    incident: int
    priority: int
    chain: EscalationChain
    generation: int
    step: int  # index of the last step paged; 0 = the first line (paged by the opening)
    next_due: datetime | None  # None: nothing more to do (acknowledged, done, or no escalation)
    acknowledged: bool = False


@dataclass(frozen=True, slots=True)
class EscalationTask:
    """What the shell schedules: page ``step`` of ``incident`` at ``due`` if still current."""

    incident: int
    generation: int
    step: int
    due: datetime


def step_delay(step: EscalationStep, priority: int) -> timedelta | None:
    factor = DELAY_FACTOR.get(priority)
    return None if factor is None else step.after * factor


def _due_after(chain: EscalationChain, index: int, priority: int, now: datetime) -> datetime | None:
    if index >= len(chain.steps):
        return None
    delay = step_delay(chain.steps[index], priority)
    return None if delay is None else now + delay


def start(
    incident: int, priority: int, chain: EscalationChain, now: datetime, generation: int = 1
) -> EscalationState:
    """The state when the incident opens: first line paged, the next step scheduled."""
    return EscalationState(
        incident=incident,
        priority=priority,
        chain=chain,
        generation=generation,
        step=0,
        next_due=_due_after(chain, 1, priority, now),
    )


def next_task(state: EscalationState) -> EscalationTask | None:
    if state.next_due is None or state.acknowledged:
        return None
    return EscalationTask(state.incident, state.generation, state.step + 1, state.next_due)


def advance(
    state: EscalationState, task: EscalationTask, now: datetime
) -> tuple[EscalationState, EscalationStep | None]:
    """Run a scheduled task: page the next step if the task is still current and due.

    A stale task (older generation, a step already paged, an acknowledged incident) or one that
    is early returns the state unchanged and ``None``.
    """
    current = next_task(state)
    if current is None or task.generation != state.generation or task.step != current.step:
        return state, None
    if now < current.due:
        return state, None
    step = state.chain.steps[task.step]
    after = replace(
        state, step=task.step, next_due=_due_after(state.chain, task.step + 1, state.priority, now)
    )
    return after, step


def acknowledge(state: EscalationState) -> EscalationState:
    """A person responded: the chain stops; any scheduled task is now stale."""
    return replace(state, acknowledged=True, next_due=None, generation=state.generation + 1)


def restart(
    state: EscalationState, priority: int, now: datetime, chain: EscalationChain | None = None
) -> EscalationState:
    """The priority changed: start over from the first line with a new generation."""
    return start(state.incident, priority, chain or state.chain, now, state.generation + 1)


def escalated_trigger(state: EscalationState, step: EscalationStep, now: datetime) -> Trigger:
    """The ``escalated`` trigger for routing, paging ``step``."""
    return Trigger(
        kind=TriggerKind.ESCALATED,
        at=now,
        generation=state.generation * 100 + state.step,
        escalation=step.target,
    )


# --- stored form -------------------------------------------------------------------------------
# The state is stored with its incident, so a restart continues each chain where it was: the
# step reached, its generation and when the next step is due (not "from the restart").


def state_to_dict(state: EscalationState) -> dict[str, Any]:
    return {
        "priority": state.priority,
        "generation": state.generation,
        "step": state.step,
        "next_due": None if state.next_due is None else state.next_due.isoformat(),
        "acknowledged": state.acknowledged,
        "chain": [
            {
                "after": step.after.total_seconds(),
                "name": step.target.name,
                "numbers": list(step.target.numbers),
                "landlines": list(step.target.landlines),
                "email": step.target.email,
            }
            for step in state.chain.steps
        ],
    }


def state_from_dict(incident: int, data: Mapping[str, Any]) -> EscalationState:
    """The state :func:`state_to_dict` stored; ``KeyError``/``TypeError``/``ValueError`` when
    ``data`` is not one."""
    due = data["next_due"]
    return EscalationState(
        incident=incident,
        priority=int(data["priority"]),
        chain=EscalationChain(
            tuple(
                EscalationStep(
                    after=timedelta(seconds=float(step["after"])),
                    target=EscalationTarget(
                        name=str(step["name"]),
                        numbers=tuple(str(n) for n in step["numbers"]),
                        landlines=tuple(str(n) for n in step["landlines"]),
                        email=str(step["email"]),
                    ),
                )
                for step in data["chain"]
            )
        ),
        generation=int(data["generation"]),
        step=int(data["step"]),
        next_due=None if due is None else datetime.fromisoformat(str(due)),
        acknowledged=bool(data["acknowledged"]),
    )
