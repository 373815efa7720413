"""Who may see and do what, over the real console service and the real accounts (SQLite):
logins, sessions, API tokens, roles, CSRF, the Host allow-list, the audit log, the kiosk link,
and a walk over every route of the app that checks it refuses anonymous access."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from auth_helpers import PASSWORD, add_user, bearer, csrf_of, log_in, make_accounts, token_for
from console_scene import NOW, Scene, example_scene, real_console, sqlite_url

from ctiwatch.accounts import Accounts, LoginLimiter
from ctiwatch.config import AlertingConfig
from ctiwatch.custpages import CustomerPagesImpl
from ctiwatch.fakes import FakeSmtp, FakeTwilio, add_fake_views
from ctiwatch.web.app import build_web_app
from ctiwatch.web.auth import LOGIN_COOKIE, PUBLIC, SESSION_COOKIE, HostAllowList, required_role
from ctiwatch.web.twilio_webhooks import add_twilio_routes

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[..., Awaitable[Client]]
WINDOW = {"start": "2026-12-03T22:00:00+01:00", "end": "2026-12-04T02:00:00+01:00",
          "services": ["crm"], "reason": "CRM connector upgrade"}  # fmt: skip


@pytest.fixture
async def scene(tmp_path: Path) -> AsyncIterator[Scene]:
    async with real_console(sqlite_url(tmp_path)) as playing:
        await example_scene(playing)
        yield playing


@pytest.fixture
def accounts(scene: Scene) -> Accounts:
    return make_accounts(
        scene.store,
        scene.clock,
        session_lifetime=timedelta(hours=12),
        limiter=LoginLimiter(scene.clock, max_failures=5, window=timedelta(minutes=15)),
    )


def the_app(scene: Scene, accounts: Accounts, **options: Any) -> web.Application:
    options.setdefault("metrics_registry", None)
    return build_web_app(scene.console, accounts=accounts, **options)


@pytest.fixture
async def app(scene: Scene, accounts: Accounts) -> web.Application:
    return the_app(scene, accounts)


@pytest.fixture
async def anonymous(aiohttp_client: ClientFactory, app: web.Application) -> Client:
    return await aiohttp_client(app)


async def as_role(
    aiohttp_client: ClientFactory, app: web.Application, accounts: Accounts, role: str
) -> Client:
    """A client sending the API token of ``role`` (the token is named after the role)."""
    return await aiohttp_client(app, headers=bearer(await token_for(accounts, role, role)))


async def browser(
    aiohttp_client: ClientFactory, app: web.Application, accounts: Accounts, user: str, role: str
) -> Client:
    client = await aiohttp_client(app)
    await add_user(accounts, user, role)
    await log_in(client, user)
    return client


# --- anonymous ----------------------------------------------------------------------------


async def test_anonymous_api_requests_get_401_with_a_bearer_challenge(anonymous: Client) -> None:
    for method, path in [("GET", "/api/v1/status"), ("POST", "/api/v1/incidents/2/ack")]:
        response = await anonymous.request(method, path, json={})
        assert response.status == 401, path
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="ctiwatch"'
        assert (await response.json())["error"] == "log in or send an API token (Bearer)"


async def test_anonymous_page_goes_to_the_login_page_and_back_after_logging_in(
    anonymous: Client, accounts: Accounts
) -> None:
    response = await anonymous.get("/incidents/2", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/login?next=/incidents/2"
    await add_user(accounts, "sanne", "oncall")
    form = await (await anonymous.get("/login?next=%2Fincidents%2F2")).text()
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token is not None and 'name="next" value="/incidents/2"' in form
    data = {"username": "sanne", "password": PASSWORD, "csrf_token": token.group(1),
            "next": "/incidents/2"}  # fmt: skip
    done = await anonymous.post("/login", data=data, allow_redirects=False)
    assert (done.status, done.headers["Location"]) == (303, "/incidents/2")
    assert (await anonymous.get("/incidents/2")).status == 200


async def test_anonymous_form_post_is_refused_and_changes_nothing(
    anonymous: Client, scene: Scene
) -> None:
    response = await anonymous.post("/incidents/2/ack", data={}, allow_redirects=False)
    assert response.status == 403
    detail = await scene.console.incident(2)
    assert detail is not None and detail.summary.status == "open"


async def test_login_to_an_outside_address_lands_on_the_status_page(
    anonymous: Client, accounts: Accounts
) -> None:
    await add_user(accounts, "sanne", "viewer")
    form = await (await anonymous.get("/login")).text()
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token is not None
    data = {"username": "sanne", "password": PASSWORD, "csrf_token": token.group(1),
            "next": "//evil.example/"}  # fmt: skip
    done = await anonymous.post("/login", data=data, allow_redirects=False)
    assert done.headers["Location"] == "/"


async def test_login_without_the_forms_token_is_refused(
    anonymous: Client, accounts: Accounts
) -> None:
    await add_user(accounts, "sanne", "viewer")
    data = {"username": "sanne", "password": PASSWORD, "csrf_token": "forged"}
    response = await anonymous.post("/login", data=data, allow_redirects=False)
    assert response.status == 403
    assert "The login form has expired" in await response.text()


# --- every route ---------------------------------------------------------------------------

# The routes anyone may use, and only these: health, static files, the login page, the kiosk
# link (its token is the credential) and the Twilio webhooks (signed with the auth token).
PUBLIC_ROUTES = {
    ("GET", "/healthz"),
    ("HEAD", "/healthz"),
    ("GET", "/static"),
    ("HEAD", "/static"),
    ("GET", "/login"),
    ("HEAD", "/login"),
    ("POST", "/login"),
    ("GET", "/kiosk/{token}"),
    ("HEAD", "/kiosk/{token}"),
    ("GET", "/kiosk/{token}/status.json"),
    ("HEAD", "/kiosk/{token}/status.json"),
    ("GET", "/kiosk/{token}/fragment"),
    ("HEAD", "/kiosk/{token}/fragment"),
    ("POST", "/twilio/sms"),
    ("POST", "/twilio/voice/gather"),
    ("POST", "/twilio/status"),
    *(
        (method, path + feed)
        for method in ("GET", "HEAD")
        for path in (
            "/status/c/{customer}",
            "/status/{token}",
        )
        for feed in ("", "/feed.atom", "/maintenance.ics")
    ),
}
_SAMPLE = {"number": "2", "id": "1", "action": "ack", "token": "ctw_nothing"}


def concrete(path: str) -> str:
    path = re.sub(r"\{(\w+)(:[^}]*)?\}", lambda m: _SAMPLE.get(m.group(1), "x"), path)
    return "/static/status.js" if path == "/static" else path


async def test_every_route_but_the_public_ones_refuses_anonymous_requests(
    aiohttp_client: ClientFactory, scene: Scene, accounts: Accounts
) -> None:
    import prometheus_client

    twilio = FakeTwilio.from_settings(scene.config.alerting.twilio, scene.clock)
    smtp = FakeSmtp(host="127.0.0.1", port=0)

    def extra(app: web.Application) -> None:
        add_twilio_routes(
            app,
            scene.console,
            AlertingConfig(),
            replays=scene.store.webhook_replays,
            clock=scene.clock,
        )
        add_fake_views(app, twilio, smtp, prefix="/fakes")

    app = the_app(
        scene,
        accounts,
        extra_routes=extra,
        metrics_registry=prometheus_client.CollectorRegistry(),
        customers=CustomerPagesImpl(scene.config, scene.pipeline, scene.console),
    )
    client = await aiohttp_client(app)
    public: set[tuple[str, str]] = set()
    walked: set[tuple[str, str]] = set()
    for route in app.router.routes():
        resource = route.resource
        assert resource is not None
        method, pattern = route.method, resource.canonical
        if required_role(method, pattern) == PUBLIC:
            public.add((method, pattern))
            continue
        response = await client.request(method, concrete(pattern), allow_redirects=False, data={})
        walked.add((method, pattern))
        where = (method, pattern, response.status)
        if pattern.startswith("/api/") or pattern == "/metrics":
            assert response.status == 401, where
        elif method in ("GET", "HEAD"):
            assert response.status == 303, where
            assert response.headers["Location"].startswith("/login?next="), where
        else:
            assert response.status == 403, where
            assert "log in first" in await response.text(), where
    assert len(walked) > 30
    assert {
        ("GET", "/reports/kpi"),
        ("GET", "/reports/kpi.csv"),
        ("GET", "/api/v1/reports/kpi"),
    } <= walked
    assert public == PUBLIC_ROUTES


# --- roles ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "ack", "schedule", "audit"),
    [
        ("viewer", 403, 403, 403),
        ("oncall", 200, 403, 403),
        ("maintainer", 200, 201, 403),
        ("admin", 200, 201, 200),
    ],
)
async def test_each_role_may_do_its_own_and_lower_roles_actions_only(
    aiohttp_client: ClientFactory,
    app: web.Application,
    accounts: Accounts,
    role: str,
    ack: int,
    schedule: int,
    audit: int,
) -> None:
    client = await as_role(aiohttp_client, app, accounts, role)
    assert (await client.get("/api/v1/status")).status == 200
    assert (await client.get("/incidents/2")).status == 200
    assert (await client.get("/api/v1/reports/kpi?month=2026-12")).status == 200
    assert (await client.get("/reports/kpi?month=2026-12")).status == 200
    assert (await client.post("/api/v1/incidents/2/ack", json={})).status == ack
    assert (await client.post("/api/v1/maintenance", json=WINDOW)).status == schedule
    assert (await client.get("/api/v1/audit")).status == audit
    assert (await client.get("/audit")).status == audit
    if ack == 403:
        body = await (await client.post("/api/v1/questions", json={})).json()
        assert body["error"] == f"{role} ({role}) may not do this: oncall or higher only"


async def test_the_actor_is_the_tokens_name_and_a_typed_actor_is_ignored(
    aiohttp_client: ClientFactory, app: web.Application, accounts: Accounts, scene: Scene
) -> None:
    client = await as_role(aiohttp_client, app, accounts, "oncall")
    response = await client.post("/api/v1/incidents/2/ack", json={"actor": "Mallory"})
    assert response.status == 200
    detail = await scene.console.incident(2)
    assert detail is not None and detail.timeline[-1].actor == "oncall"


# --- sessions, CSRF, cookies ---------------------------------------------------------------


async def test_a_form_without_or_with_a_wrong_csrf_token_is_refused(
    aiohttp_client: ClientFactory, app: web.Application, accounts: Accounts, scene: Scene
) -> None:
    client = await browser(aiohttp_client, app, accounts, "sanne", "oncall")
    for data in ({}, {"csrf_token": "wrong"}):
        response = await client.post("/incidents/2/ack", data=data, allow_redirects=False)
        assert response.status == 403
        assert "CSRF token missing or wrong" in await response.text()
    detail = await scene.console.incident(2)
    assert detail is not None and detail.summary.status == "open"
    data = {"csrf_token": csrf_of(client)}
    response = await client.post("/incidents/2/ack", data=data, allow_redirects=False)
    assert response.status == 303


async def test_session_cookie_is_httponly_lax_and_secure_over_https(
    aiohttp_client: ClientFactory, scene: Scene, accounts: Accounts
) -> None:
    await add_user(accounts, "sanne", "viewer")
    for https in (False, True):
        client = await aiohttp_client(the_app(scene, accounts, https=https))
        form = await (await client.get("/login")).text()
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token is not None
        data = {"username": "sanne", "password": PASSWORD, "csrf_token": token.group(1)}
        # A Secure cookie is not sent back over the test's plain http: send it as a browser
        # behind https would.
        cookies = {LOGIN_COOKIE: token.group(1)}
        done = await client.post("/login", data=data, cookies=cookies, allow_redirects=False)
        cookie = next(
            v for k, v in done.headers.items() if k == "Set-Cookie" and SESSION_COOKIE in v
        )
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
        assert ("Secure" in cookie) is https


async def test_a_session_expires_on_the_clock(
    aiohttp_client: ClientFactory, app: web.Application, accounts: Accounts, scene: Scene
) -> None:
    client = await browser(aiohttp_client, app, accounts, "sanne", "viewer")
    scene.clock.set(NOW + timedelta(hours=11, minutes=59))
    assert (await client.get("/incidents", allow_redirects=False)).status == 200
    scene.clock.set(NOW + timedelta(hours=12))
    response = await client.get("/incidents", allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (303, "/login?next=/incidents")


async def test_logout_ends_the_session_on_the_server(
    aiohttp_client: ClientFactory, app: web.Application, accounts: Accounts
) -> None:
    client = await browser(aiohttp_client, app, accounts, "sanne", "viewer")
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))[SESSION_COOKIE].value
    done = await client.post("/logout", data={"csrf_token": csrf_of(client)}, allow_redirects=False)
    assert (done.status, done.headers["Location"]) == (303, "/login")
    # The old cookie, sent again, is nobody's.
    again = await client.get("/incidents", cookies={SESSION_COOKIE: cookie}, allow_redirects=False)
    assert again.status == 303


async def test_a_disabled_user_is_logged_out_and_cannot_log_in(
    aiohttp_client: ClientFactory, app: web.Application, accounts: Accounts
) -> None:
    client = await browser(aiohttp_client, app, accounts, "sanne", "oncall")
    await accounts.disable_user("sanne", by="admin")
    assert (await client.get("/incidents", allow_redirects=False)).status == 303
    with pytest.raises(AssertionError):
        await log_in(client, "sanne")


# --- login rate limit ----------------------------------------------------------------------


async def try_login(client: Client, username: str, password: str) -> Any:
    form = await (await client.get("/login")).text()
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token is not None
    data = {"username": username, "password": password, "csrf_token": token.group(1)}
    return await client.post("/login", data=data, allow_redirects=False)


async def test_logins_are_refused_after_five_failures_until_the_window_passes(
    anonymous: Client, accounts: Accounts, scene: Scene
) -> None:
    await add_user(accounts, "sanne", "viewer")
    for _ in range(5):
        response = await try_login(anonymous, "sanne", "wrong password")
        assert response.status == 401
        assert "Wrong username or password." in await response.text()
    refused = await try_login(anonymous, "sanne", PASSWORD)  # right, but too late
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "900"
    assert "Too many failed logins; try again in 15 minute(s)." in await refused.text()
    scene.clock.set(NOW + timedelta(minutes=15))
    assert (await try_login(anonymous, "sanne", PASSWORD)).status == 303


async def test_failures_from_one_address_over_many_names_are_limited_too(
    anonymous: Client, accounts: Accounts
) -> None:
    await add_user(accounts, "sanne", "viewer")
    for name in ("a1", "a2", "a3", "a4", "a5"):
        assert (await try_login(anonymous, name, "guess")).status == 401
    assert (await try_login(anonymous, "sanne", PASSWORD)).status == 429


# --- tokens --------------------------------------------------------------------------------


async def test_a_revoked_token_gets_401_at_once(
    aiohttp_client: ClientFactory, app: web.Application, accounts: Accounts
) -> None:
    secret = await token_for(accounts, "ci", "viewer")
    client = await aiohttp_client(app, headers=bearer(secret))
    assert (await client.get("/api/v1/status")).status == 200
    await accounts.revoke_token("ci", by="admin")
    response = await client.get("/api/v1/status")
    assert response.status == 401
    assert (await response.json())["error"] == "the API token is not valid (unknown or revoked)"
    (token,) = await accounts.tokens()
    assert token.revoked_at == NOW and token.last_used_at == NOW


async def test_a_made_up_token_gets_401(anonymous: Client) -> None:
    response = await anonymous.get("/api/v1/status", headers=bearer("ctw_made-up"))
    assert response.status == 401


# --- Host allow-list and Origin ------------------------------------------------------------


async def test_a_host_not_on_the_allow_list_is_refused_with_421(
    aiohttp_client: ClientFactory, scene: Scene, accounts: Accounts
) -> None:
    app = the_app(scene, accounts, hosts=HostAllowList(["ctiwatch.example", "127.0.0.1"]))
    client = await as_role(aiohttp_client, app, accounts, "viewer")
    for host in ("rebind.attacker.example", "rebind.attacker.example:8080", "localhost"):
        response = await client.get("/api/v1/status", headers={"Host": host})
        assert response.status == 421, host
    assert (await client.get("/healthz", headers={"Host": "evil.example"})).status == 421
    for host in ("ctiwatch.example", "ctiwatch.example:443", "CTIWATCH.example"):
        assert (await client.get("/api/v1/status", headers={"Host": host})).status == 200


def test_the_default_allow_list_names_localhost_on_the_configured_port() -> None:
    from ctiwatch.web.auth import default_hosts

    hosts = HostAllowList(default_hosts(8080))
    assert [hosts.allows(h) for h in ("127.0.0.1:8080", "localhost:8080", "[::1]:8080")] == [
        True
    ] * 3
    assert not hosts.allows("127.0.0.1:9999") and not hosts.allows("evil.example:8080")


async def test_a_post_from_a_rebinding_origin_is_refused(
    aiohttp_client: ClientFactory, app: web.Application, accounts: Accounts, scene: Scene
) -> None:
    client = await browser(aiohttp_client, app, accounts, "sanne", "oncall")
    port = client.port
    data = {"csrf_token": csrf_of(client)}
    for origin in (f"http://rebind.attacker.example:{port}", "http://evil.example"):
        response = await client.post(
            "/incidents/2/ack", data=data, headers={"Origin": origin}, allow_redirects=False
        )
        assert response.status == 403, origin
    detail = await scene.console.incident(2)
    assert detail is not None and detail.summary.status == "open"
    same = await client.post(
        "/incidents/2/ack",
        data=data,
        headers={"Origin": f"http://127.0.0.1:{port}"},
        allow_redirects=False,
    )
    assert same.status == 303


# --- audit ---------------------------------------------------------------------------------


async def test_every_action_writes_an_audit_line_with_actor_and_address(
    aiohttp_client: ClientFactory, app: web.Application, accounts: Accounts
) -> None:
    api = await as_role(aiohttp_client, app, accounts, "maintainer")
    client = await browser(aiohttp_client, app, accounts, "sanne", "admin")
    data = {"csrf_token": csrf_of(client)}
    assert (await client.post("/incidents/2/ack", data=data, allow_redirects=False)).status == 303
    data = {**data, "text": "Carrier confirms"}
    assert (
        await client.post("/incidents/2/update", data=data, allow_redirects=False)
    ).status == 303
    assert (await api.post("/api/v1/maintenance", json=WINDOW)).status == 201
    assert (await api.post("/api/v1/maintenance/1/cancel", json={})).status == 200
    lines = await accounts.audit_log()
    assert [(e.actor, e.action, e.target, e.address) for e in lines[:4]] == [
        ("maintainer", "maintenance.cancel", "maintenance window 1", "127.0.0.1"),
        ("maintainer", "maintenance.schedule", "maintenance window 1", "127.0.0.1"),
        ("sanne", "incident.update", "incident 2", "127.0.0.1"),
        ("sanne", "incident.ack", "incident 2", "127.0.0.1"),
    ]
    assert lines[2].detail == "Carrier confirms"
    assert {(e.actor, e.action) for e in lines[4:]} >= {
        ("sanne", "login"),
        ("test", "user.add"),
        ("test", "token.create"),
    }
    body = await (await client.get("/api/v1/audit?limit=2")).json()
    assert [(a["actor"], a["action"], a["at"]) for a in body["audit"]] == [
        ("maintainer", "maintenance.cancel", "2026-12-01T10:00:00+01:00"),
        ("maintainer", "maintenance.schedule", "2026-12-01T10:00:00+01:00"),
    ]
    page = await (await client.get("/audit")).text()
    assert '<tr class="audit-line" data-action="incident.ack">' in page


async def test_the_audit_line_of_a_new_window_gives_its_times_in_local_time(
    aiohttp_client: ClientFactory, app: web.Application, accounts: Accounts
) -> None:
    api = await as_role(aiohttp_client, app, accounts, "maintainer")
    utc = {**WINDOW, "start": "2026-12-03T21:00:00Z", "end": "2026-12-04T01:00:00Z"}
    assert (await api.post("/api/v1/maintenance", json=utc)).status == 201
    [line] = [e for e in await accounts.audit_log() if e.action == "maintenance.schedule"]
    assert line.detail == "Thu 03 Dec 2026 22:00 – Fri 04 Dec 02:00 CET: CRM connector upgrade"


async def test_a_refused_action_writes_no_audit_line(
    aiohttp_client: ClientFactory, app: web.Application, accounts: Accounts
) -> None:
    api = await as_role(aiohttp_client, app, accounts, "oncall")
    before = len(await accounts.audit_log())
    assert (await api.post("/api/v1/incidents/1/ack", json={})).status == 409  # resolved
    assert len(await accounts.audit_log()) == before


async def test_failed_logins_are_audited_with_the_address(
    anonymous: Client, accounts: Accounts
) -> None:
    await try_login(anonymous, "nobody", "guess")
    (line,) = await accounts.audit_log()
    assert (line.actor, line.action, line.address) == ("nobody", "login.failed", "127.0.0.1")


# --- kiosk and the demo fakes --------------------------------------------------------------


async def test_a_kiosk_link_shows_the_overview_read_only_until_revoked(
    anonymous: Client, accounts: Accounts
) -> None:
    secret, _ = await accounts.create_token("wall", "viewer", kiosk=True, by="admin")
    page = await anonymous.get(f"/kiosk/{secret}")
    assert page.status == 200
    html = await page.text()
    assert 'data-tile="acme/acme-ams/click2dial" data-state="down"' in html
    assert f'data-fragment="/kiosk/{secret}/fragment" data-events=""' in html
    fragment = await anonymous.get(f"/kiosk/{secret}/fragment")
    assert 'data-tile="acme/acme-ams/click2dial" data-state="down"' in await fragment.text()
    assert "<form" not in html and "<nav>" not in html and "Log in" not in html
    status = await anonymous.get(f"/kiosk/{secret}/status.json")
    assert (await status.json())["overall"]["state"] == "down"
    # The link is no key to anything else.
    assert (await anonymous.get("/api/v1/status", headers=bearer(secret))).status == 200
    assert (
        await anonymous.post("/api/v1/incidents/2/ack", json={}, headers=bearer(secret))
    ).status == 403
    await accounts.revoke_token("wall", by="admin")
    assert (await anonymous.get(f"/kiosk/{secret}")).status == 404


async def test_an_api_token_is_no_kiosk_link(anonymous: Client, accounts: Accounts) -> None:
    secret = await token_for(accounts, "ci", "viewer")
    assert (await anonymous.get(f"/kiosk/{secret}")).status == 404


async def test_a_kiosk_link_is_read_only(accounts: Accounts) -> None:
    from ctiwatch.accounts import AccountError

    with pytest.raises(AccountError, match="its role must be viewer"):
        await accounts.create_token("wall", "oncall", kiosk=True, by="admin")


async def test_the_demo_fakes_are_linked_and_open_for_admins_only(
    aiohttp_client: ClientFactory, scene: Scene, accounts: Accounts
) -> None:
    links = [("Fake phone", "/fakes/phone"), ("Mailbox", "/fakes/mail")]
    smtp = FakeSmtp(host="127.0.0.1", port=0)
    app = the_app(
        scene,
        accounts,
        nav_links=links,
        extra_routes=lambda a: add_fake_views(a, None, smtp, prefix="/fakes"),
    )
    oncall = await browser(aiohttp_client, app, accounts, "olaf", "oncall")
    assert "/fakes/phone" not in await (await oncall.get("/incidents")).text()
    assert (await oncall.get("/fakes/mailbox")).status == 403
    admin = await browser(aiohttp_client, app, accounts, "ada", "admin")
    html = await (await admin.get("/incidents")).text()
    assert '<a href="/fakes/phone" class="">Fake phone</a>' in html
    assert (await admin.get("/fakes/mailbox")).status == 200


async def test_an_on_call_number_resolves_to_the_user_who_owns_it(accounts: Accounts) -> None:
    await add_user(accounts, "sanne", "oncall", phone="+31612345678")
    assert await accounts.person_with_phone("+31612345678") == "sanne"
    assert await accounts.person_with_phone("+31687654321") is None


async def test_the_admin_page_creates_a_token_shown_once_and_revokes_it(
    aiohttp_client: ClientFactory, app: web.Application, accounts: Accounts
) -> None:
    admin = await browser(aiohttp_client, app, accounts, "ada", "admin")
    data = {"csrf_token": csrf_of(admin), "name": "wall screen", "role": "viewer", "kiosk": "1"}
    created = await admin.post("/admin/tokens", data=data)
    assert created.status == 201
    html = await created.text()
    secret = re.search(r'<code id="token-secret">(ctw_[^<]+)</code>', html)
    assert secret is not None and f'href="/kiosk/{secret.group(1)}"' in html
    listed = await (await admin.get("/admin")).text()
    assert secret.group(1) not in listed and 'data-token="wall screen"' in listed
    (token,) = await accounts.tokens()
    done = await admin.post(
        f"/admin/tokens/{token.id}/revoke",
        data={"csrf_token": csrf_of(admin)},
        allow_redirects=False,
    )
    assert done.status == 303
    assert (await accounts.tokens())[0].revoked_at is not None


async def test_the_simulators_admin_api_in_ctiwatch_run_is_for_admins_only(
    aiohttp_client: ClientFactory, scene: Scene, accounts: Accounts
) -> None:
    import random
    from functools import partial

    from ctiwatch.app import _admin_token
    from ctiwatch.simulator import SimulatorCore, make_app

    core = SimulatorCore.from_config(scene.config)
    guarded = make_app(
        core, scene.clock, random.Random(1), admin_allowed=partial(_admin_token, accounts)
    )
    client = await aiohttp_client(guarded)
    fault = {"service": "click2dial", "customer": "acme", "kind": "outage"}
    assert (await client.post("/admin/faults", json=fault)).status == 401
    oncall = bearer(await token_for(accounts, "olaf", "oncall"))
    assert (await client.post("/admin/faults", json=fault, headers=oncall)).status == 401
    admin = bearer(await token_for(accounts, "ada", "admin"))
    assert (await client.post("/admin/faults", json=fault, headers=admin)).status == 201
    # Without the demo fakes there is no admin API at all: the path is the CloudCTI API's.
    bare = await aiohttp_client(make_app(core, scene.clock, admin_api=False))
    assert (await bare.get("/admin/faults", headers=admin)).status != 200
