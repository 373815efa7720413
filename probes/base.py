"""What every probe shares: the request/response values, the transport interface, the target,
the per-run context (clock, timeout, retries) and the attempt runner.

The network is kept apart from the logic: a probe builds an :class:`HttpRequest`, hands it to a
:class:`Transport` and checks the :class:`HttpResponse`. The real transport is aiohttp
(:mod:`probes.transport`); ``ctiwatch simulate`` plugs in an in-memory one driven by the
virtual clock, so the same request building and answer checking run there.

A probe returns a :class:`~classifier.observation.ProbeResult`: a fact with a Gatus-like
evidence line (``POST http://... [STATUS] (503) == 201; 4 ms; 3 attempts``), never a verdict.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import re
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from tenacity import (
    DoAttempt,
    DoSleep,
    RetryCallState,
    Retrying,
    retry_if_result,
    stop_after_attempt,
    wait_exponential,
)

from classifier.observation import CENTRAL, ProbeResult, Source, TargetKey
from sla.clock import Clock

if TYPE_CHECKING:
    from probes.template import BoundTemplate, RequestTemplate

T = TypeVar("T")


# --- the wire ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    url: str
    headers: Mapping[str, str]
    json: Any | None = None


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: bytes
    headers: Mapping[str, str]
    # Expiry of the server's TLS certificate, when the answer came over verified TLS.
    tls_not_after: datetime | None = None


class TransportError(Exception):
    """No answer at all: connection refused or reset, DNS failure, TLS handshake failure."""


class Transport(Protocol):
    async def send(self, request: HttpRequest) -> HttpResponse:
        """Send ``request`` and return the answer; raise :class:`TransportError` if none came."""
        ...


# --- who asks -------------------------------------------------------------------------------


def _product() -> str:
    try:
        return f"ctiwatch/{metadata.version('ctiwatch')}"
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "ctiwatch"


PRODUCT = _product()
_AGENT = re.compile(r"^ctiwatch(?:/\S+)? \(agent ([^()\s]+)\)$")


def user_agent(source: str) -> str:
    """The ``User-Agent`` a prober sends, naming the source it reports as:
    ``ctiwatch/0.1.0 (central)`` or ``ctiwatch/0.1.0 (agent ams-agent-1)``."""
    return f"{PRODUCT} ({'central' if source == CENTRAL else f'agent {source}'})"


def source_of(user_agent: str | None) -> str:
    """The source a request's ``User-Agent`` names (:func:`user_agent`); ``central`` for
    anything else (the central prober of an older ctiwatch, curl, a browser)."""
    found = _AGENT.match(user_agent or "")
    return found.group(1) if found else CENTRAL


# --- targets and context -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """One thing to probe: a service as one test user at one location of one customer."""

    key: TargetKey
    base_url: str
    api_token: str
    caller_number: str
    expected_contact: str
    extension: str = ""
    # The request and conditions (``probes.template``); None: the service's default template.
    template: RequestTemplate | None = field(default=None, compare=False)
    # Built once per target so the hot path does not rebuild them every round.
    auth_headers: Mapping[str, str] = field(init=False, repr=False, compare=False)
    # Each probe kind's request for this target, built on first use (see ``cached_request``).
    requests: dict[str, HttpRequest] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    # Templates bound to this target, built on first use (``probes.template.bound``).
    prepared: dict[RequestTemplate, BoundTemplate] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        headers = {"Accept": "application/json"}
        if self.api_token:
            headers["Authorization"] = f"Bearer {self.api_token}"
        object.__setattr__(self, "auth_headers", headers)

    @property
    def kind(self) -> str:
        """The probe module that handles this target (a key of ``probes.PROBES``)."""
        return self.key.service.value


def cached_request(
    target: ProbeTarget, kind: str, build: Callable[[ProbeTarget], HttpRequest]
) -> HttpRequest:
    """``build(target)``, once per target and kind: requests are immutable values."""
    request = target.requests.get(kind)
    if request is None:
        request = target.requests[kind] = build(target)
    return request


class _IdStream:
    """Unpredictable ids without a system call each: a keyed BLAKE2b of a counter, the key
    drawn from ``os.urandom`` once per process (and again in a forked child). ``os.urandom``
    per id gave the interpreter away on every probe, and the event loop waited for it back
    while a worker thread (SQLite, gzip) held it."""

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        self._key = os.urandom(32)
        self._counter = itertools.count()

    def __call__(self) -> str:
        message = next(self._counter).to_bytes(8, "big")
        return hashlib.blake2b(message, key=self._key, digest_size=16).hexdigest()


_IDS = _IdStream()
os.register_at_fork(after_in_child=_IDS.reseed)


def random_ids() -> str:
    """128 unpredictable bits as 32 hex digits (the shape of ``uuid4().hex``), unique within
    the process and, by their key, across processes."""
    return _IDS()


def sequential_ids(prefix: str = "r") -> Callable[[], str]:
    """Deterministic result ids (``r1``, ``r2``, ...) for ``simulate`` and tests."""
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter)}"


@dataclass(slots=True)
class Attempt:
    """What one request of a round gave."""

    ok: bool
    status: int | None
    recognised: bool | None
    detail: str
    latency: float  # seconds


_SIGNED_LIMIT = 65_536


def _failed(attempt: Attempt) -> bool:
    return not attempt.ok


def _last_outcome(state: Any) -> Attempt:
    # Every attempt failed: the round's answer is the last attempt, not an exception.
    result: Attempt = state.outcome.result()
    return result


@dataclass(frozen=True, slots=True)
class ProbeContext:
    """How probes run: the clock, the per-attempt timeout, retries inside a round, result ids.

    Retries are decided by tenacity (stop after ``1 + retries`` attempts, exponential backoff,
    retry while the attempt failed), and the backoff is slept with the clock's sleep, so it
    costs virtual time in ``simulate``. The first attempt runs without tenacity: a good answer,
    the usual case, costs no retry machinery.

    One prepared tenacity ``Retrying`` serves every round: each round has its own
    ``RetryCallState`` and asks the engine what to do next (``Retrying.iter``: attempt, sleep or
    stop), the loop tenacity's own ``AsyncRetrying`` runs. The decision step is synchronous,
    so concurrent rounds never interleave inside it, and nothing is copied or re-inspected per
    round (``AsyncRetrying`` wraps and inspects its callables at every step: a failed round
    cost about ten good ones).
    """

    clock: Clock
    timeout: float = 10.0
    retries: int = 2
    retry_backoff: float = 1.0
    new_id: Callable[[], str] = random_ids
    max_backoff: float = 30.0
    # Who probes: ``central`` or the agent's id; every request says so in its User-Agent.
    source: str = CENTRAL
    _retrying: Retrying = field(init=False, repr=False, compare=False)
    # A target's request -> the same request with this prober's User-Agent (made once).
    _signed: dict[int, tuple[HttpRequest, HttpRequest]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if self.retries < 0:
            raise ValueError("retries must not be negative")
        retrying = Retrying(
            stop=stop_after_attempt(1 + self.retries),
            wait=wait_exponential(multiplier=self.retry_backoff, max=self.max_backoff),
            retry=retry_if_result(_failed),
            retry_error_callback=_last_outcome,
        )
        object.__setattr__(self, "_retrying", retrying)

    def signed(self, request: HttpRequest) -> HttpRequest:
        """``request`` with this prober's ``User-Agent``; one value per request object, so a
        transport's own per-request caches keep working round after round."""
        known = self._signed.get(id(request))
        if known is not None and known[0] is request:
            return known[1]
        headers = {**request.headers, "User-Agent": user_agent(self.source)}
        signed = HttpRequest(request.method, request.url, headers, request.json)
        if len(self._signed) >= _SIGNED_LIMIT:
            self._signed.clear()
        self._signed[id(request)] = (request, signed)
        return signed

    @property
    def worst_case(self) -> float:
        """The longest a round can take: every attempt times out, every backoff is slept."""
        backoffs = sum(
            min(self.retry_backoff * 2.0**n, self.max_backoff) for n in range(self.retries)
        )
        return self.timeout * (1 + self.retries) + backoffs

    async def attempt(
        self, once: Callable[[], Awaitable[Attempt]], first: Attempt | None = None
    ) -> tuple[Attempt, int]:
        """Run ``once`` until it is ok or the retries are used up; return it and the count.

        ``first``: the first attempt, when the caller already made it.
        """
        if first is None:
            first = await once()
        if first.ok or self.retries == 0:
            return first, 1
        retrying = self._retrying
        retrying.begin()  # its statistics (shared by concurrent rounds: not read here)
        state = RetryCallState(retrying, fn=None, args=(), kwargs={})
        state.set_result(first)  # tenacity's attempt 1 is the one already made
        count = 1
        while True:
            action = retrying.iter(state)
            if isinstance(action, DoAttempt):
                count += 1
                state.set_result(await once())
            elif isinstance(action, DoSleep):
                state.prepare_for_next_attempt()
                await self.clock.sleep(action)
            else:
                last: Attempt = action
                return last, count


Probe = Callable[[ProbeTarget, Transport, ProbeContext], Awaitable[ProbeResult]]
Check = Callable[[HttpResponse, ProbeTarget, ProbeContext, float], tuple[bool, bool | None, str]]
"""Judges one answer (and the attempt's latency in seconds): ``(ok, recognised, evidence)``."""


class Stepper(Protocol):
    """What ``await`` drives: a coroutine, or the iterator of an awaitable's ``__await__``."""

    def send(self, value: Any, /) -> Any: ...

    def throw(self, exc: BaseException, /) -> Any: ...

    def close(self) -> None: ...


class Resumed(Generic[T]):
    """Awaits the rest of a coroutine (or ``__await__`` iterator) already run up to its first wait.

    Running the first step by hand (``waiting = coroutine.send(None)``) tells whether the work
    finishes without waiting (``StopIteration``) or what it waits on; in the second case
    ``await Resumed(coroutine, waiting)`` goes on exactly as ``await coroutine`` would have: what
    the coroutine waits on goes to the task, the task's answers (values, cancellation) back in.
    """

    __slots__ = ("_coroutine", "_waiting")

    def __init__(self, coroutine: Stepper, waiting: Any) -> None:
        self._coroutine = coroutine
        self._waiting = waiting

    def __await__(self) -> Generator[Any, Any, T]:
        coroutine, waiting = self._coroutine, self._waiting
        while True:
            try:
                sent = yield waiting
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as exc:
                try:
                    waiting = coroutine.throw(exc)
                except StopIteration as stop:
                    result: T = stop.value
                    return result
            else:
                try:
                    waiting = coroutine.send(sent)
                except StopIteration as stop:
                    result = stop.value
                    return result


async def _attempt_once(
    target: ProbeTarget,
    transport: Transport,
    ctx: ProbeContext,
    request: HttpRequest,
    check: Check,
    begin: datetime,
) -> Attempt:
    timeout = ctx.timeout
    sending = transport.send(request)
    try:
        try:
            waiting = sending.send(None)
        except StopIteration as answered:
            # Answered without waiting: no time passed, so the timeout cannot have expired
            # and needs no timer (an in-memory transport's usual case).
            response = answered.value
        else:
            # The send waits (the usual case over a network): from here on it is bounded.
            async with asyncio.timeout(timeout):
                response = await Resumed[HttpResponse](sending, waiting)
    except TimeoutError:
        return Attempt(False, None, None, f"timeout after {timeout:g} s", timeout)
    except TransportError as exc:
        latency = (ctx.clock.now() - begin).total_seconds()
        return Attempt(False, None, None, f"no answer: {exc}", latency)
    latency = (ctx.clock.now() - begin).total_seconds()
    ok, recognised, detail = check(response, target, ctx, latency)
    return Attempt(ok, response.status, recognised, detail, latency)


async def run_http_probe(
    target: ProbeTarget,
    transport: Transport,
    ctx: ProbeContext,
    request: HttpRequest,
    check: Check,
) -> ProbeResult:
    """Send ``request`` with the context's timeout and retries; ``check`` judges each answer.

    The first attempt begins when the round does; it runs inline (no closure, no retry
    machinery), since a good answer is the usual case.
    """
    clock = ctx.clock
    started = clock.now()
    request = ctx.signed(request)
    outcome = await _attempt_once(target, transport, ctx, request, check, started)
    attempts = 1
    if not outcome.ok and ctx.retries:

        def once() -> Awaitable[Attempt]:
            return _attempt_once(target, transport, ctx, request, check, clock.now())

        outcome, attempts = await ctx.attempt(once, outcome)
    latency_ms = round(outcome.latency * 1000.0, 3)
    tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
    ok = outcome.ok
    return ProbeResult(
        ctx.new_id(),
        target.key,
        started,
        ok,
        outcome.recognised if ok else None,
        latency_ms,
        outcome.status,
        f"{request.method} {request.url} {outcome.detail}; {latency_ms:g} ms; {tries}",
        Source.PROBE,
        attempts,
    )


def json_answer(response: HttpResponse) -> tuple[Any, str | None]:
    """The decoded JSON of a 2xx answer, or ``None`` and the condition that failed (as evidence).

    The built-in checks of click2dial and crm share this part; each then checks its shape.
    """
    status = response.status
    if not 200 <= status < 300:
        return None, f"[STATUS] ({status}) == 2xx"
    try:
        return json.loads(response.body), None
    except ValueError:
        return None, f"[STATUS] ({status}) == 2xx, [BODY] ({body_excerpt(response.body)}) is JSON"


def body_excerpt(body: bytes, limit: int = 80) -> str:
    text = body[:limit].decode("utf-8", "replace").replace("\n", " ")
    return text + ("..." if len(body) > limit else "")
