"""schemathesis against the live API: the real web app over the real console service (the
example scene, on SQLite) served on its own port in a thread, called over HTTP with an admin
token, every operation of the served OpenAPI document with a few generated requests each: no
5xx, every answer conforming to its documented status, content type and schema.

Bounded and reproducible: a few examples per operation, derandomized (no database of examples).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from auth_helpers import bearer, make_accounts, token_for
from console_scene import example_scene, real_console, sqlite_url
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from ctiwatch.web.app import build_web_app
from ctiwatch.web.openapi import OPENAPI_PATH, api_routes


@dataclass
class LiveApi:
    base_url: str
    token: str
    document: dict[str, Any]


def _serve(folder: Path, started: dict[str, Any], ready: threading.Event) -> None:
    async def main() -> None:
        try:
            async with real_console(sqlite_url(folder)) as scene:
                await example_scene(scene)
                accounts = make_accounts(scene.store, scene.clock)
                token = await token_for(accounts, "schemathesis", "admin")
                app = build_web_app(scene.console, accounts=accounts, metrics_registry=None)
                runner = web.AppRunner(app)
                await runner.setup()
                site = web.TCPSite(runner, "127.0.0.1", 0)
                await site.start()
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                started.update(
                    port=runner.addresses[0][1],
                    token=token,
                    stop=lambda: loop.call_soon_threadsafe(stop.set),
                )
                ready.set()
                await stop.wait()
                await runner.cleanup()
        except BaseException as exc:  # the test says why the server did not start
            started["error"] = exc
            ready.set()
            raise

    asyncio.run(main())


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    started: dict[str, Any] = {}
    ready = threading.Event()
    thread = threading.Thread(
        target=_serve, args=(tmp_path_factory.mktemp("live-api"), started, ready), daemon=True
    )
    thread.start()
    assert ready.wait(60), "the live API did not start"
    assert "error" not in started, started.get("error")
    base_url = f"http://127.0.0.1:{started['port']}"
    answer = requests.get(base_url + OPENAPI_PATH, headers=bearer(started["token"]), timeout=30)
    assert answer.status_code == 200, answer.text
    try:
        yield LiveApi(base_url, started["token"], answer.json())
    finally:
        started["stop"]()
        thread.join(30)


@pytest.fixture(scope="module")
def api_schema(live_api: LiveApi) -> Any:
    return schemathesis.openapi.from_dict(live_api.document)


def _operations() -> list[tuple[str, str]]:
    """Every operation of the document (the app's route table), one test each."""
    app = build_web_app(None, accounts=None, metrics_registry=None)  # type: ignore[arg-type]
    return [(method, path) for method, path, _ in api_routes(app)]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize(("method", "path"), _operations())
def test_the_live_api_answers_every_generated_request_as_its_document_says(
    method: str, path: str, mode: GenerationMode, api_schema: Any, live_api: LiveApi
) -> None:
    """Requests that fit the document (positive) and that do not (negative, which must be
    refused with a 4xx in the error shape). Every check but positive data acceptance: a
    request can fit the schema and still be refused for what it means (an unknown customer,
    a window in the past, support hours), a 400 naming the field, as documented."""
    operation = api_schema[path][method]

    @given(operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=8,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        case.call_and_validate(
            base_url=live_api.base_url,
            headers=bearer(live_api.token),
            excluded_checks=[positive_data_acceptance],
            timeout=30,
        )

    check()
