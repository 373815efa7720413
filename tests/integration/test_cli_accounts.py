"""``ctiwatch users`` and ``ctiwatch tokens`` on a SQLite database, in-process: passwords from
stdin, never argv; tokens printed once; bad input exits 2 naming the field. And the first
admin at start: the demo admin the config names, or a one-time password."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from auth_helpers import TEST_HASHER
from console_scene import NOW

from ctiwatch.accounts import Accounts
from ctiwatch.cli import main
from ctiwatch.clock import FixedClock
from ctiwatch.config import ConfigError, config_from_data
from ctiwatch.storage import Store


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "ctiwatch.yaml"
    path.write_text(f"storage:\n  url: sqlite+aiosqlite:///{tmp_path}/db/ctiwatch.db\n")
    return path


def run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str, stdin: str = ""
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_users_add_list_passwd_disable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, config_file: Path
) -> None:
    cfg = ["--config", str(config_file)]
    added = run(capsys, monkeypatch, "users", "add", "sanne", "--role", "oncall",
                "--phone", "+31 6 1234 5678", *cfg, stdin="a long enough password\n")  # fmt: skip
    assert added == (0, "user sanne added (oncall)\n", "")
    code, out, _ = run(capsys, monkeypatch, "users", "list", *cfg)
    assert code == 0 and out.split() == ["sanne", "oncall", "+31612345678", "active"]
    changed = run(
        capsys, monkeypatch, "users", "passwd", "sanne", *cfg, stdin="another password!\n"
    )
    assert changed[0] == 0 and "their sessions ended" in changed[1]
    assert run(capsys, monkeypatch, "users", "disable", "sanne", *cfg)[0] == 0
    code, out, _ = run(capsys, monkeypatch, "users", "list", *cfg)
    assert "disabled" in out


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["users", "add", "Sanne", "--role", "viewer"], "long password 1",
         "error: username: must be 1 to 64 lowercase letters"),
        (["users", "add", "sanne", "--role", "viewer"], "short",
         "error: password: must be at least 10 characters"),
        (["users", "add", "sanne", "--role", "viewer", "--phone", "0612"], "long password 1",
         "error: phone: must be a number in international form"),
        (["users", "passwd", "nobody"], "long password 1", "error: username: no user 'nobody'"),
        (["tokens", "revoke", "nothing"], "", "error: name: no token named 'nothing'"),
        (["tokens", "create", "wall", "--role", "admin", "--kiosk"], "",
         "error: role: a kiosk link is read-only: its role must be viewer"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_naming_the_field(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    config_file: Path,
    args: list[str],
    stdin: str,
    message: str,
) -> None:
    code, out, err = run(capsys, monkeypatch, *args, "--config", str(config_file), stdin=stdin)
    assert code == 2 and out == ""
    assert err.startswith(message) and err.count("\n") == 1


def test_a_role_that_does_not_exist_is_refused_by_the_parser(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, config_file: Path
) -> None:
    with pytest.raises(SystemExit) as exit_:
        run(capsys, monkeypatch, "users", "add", "x", "--role", "root")
    assert exit_.value.code == 2
    assert "invalid choice: 'root'" in capsys.readouterr().err


def test_tokens_are_printed_once_and_stored_hashed(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    config_file: Path,
    tmp_path: Path,
) -> None:
    cfg = ["--config", str(config_file)]
    create = ["tokens", "create", "wall", "--role", "viewer", "--kiosk", *cfg]
    code, out, _ = run(capsys, monkeypatch, *create)
    assert code == 0
    lines = out.splitlines()
    secret = lines[1]
    assert secret.startswith("ctw_") and lines[2].endswith(f"/kiosk/{secret}")
    code, out, _ = run(capsys, monkeypatch, "tokens", "list", *cfg)
    assert secret not in out and secret[:10] in out and "kiosk" in out

    async def stored() -> None:
        async with Store.open(f"sqlite+aiosqlite:///{tmp_path}/db/ctiwatch.db") as store:
            accounts = Accounts(store, FixedClock(NOW), hasher=TEST_HASHER)
            token = await accounts.token(secret)
            assert token is not None and token.name == "wall" and token.kiosk
            assert secret not in str(await store.accounts.tokens())

    asyncio.run(stored())
    assert run(capsys, monkeypatch, "tokens", "revoke", "wall", *cfg)[0] == 0


async def test_the_first_start_makes_an_admin_with_a_one_time_password(tmp_path: Path) -> None:
    async with Store.open(f"sqlite+aiosqlite:///{tmp_path}/a.db") as store:
        accounts = Accounts(store, FixedClock(NOW), hasher=TEST_HASHER)
        one_time = await accounts.ensure_admin(None, None)
        assert one_time is not None and len(one_time) >= 12
        (admin,) = await accounts.users()
        assert (admin.username, admin.role) == ("admin", "admin")
        assert await accounts.ensure_admin(None, None) is None  # only when there is no user
        secret, session = await accounts.login("admin", one_time, "127.0.0.1")
        assert session.user.username == "admin" and secret


async def test_the_demo_admin_is_created_with_the_configured_password(tmp_path: Path) -> None:
    async with Store.open(f"sqlite+aiosqlite:///{tmp_path}/a.db") as store:
        accounts = Accounts(store, FixedClock(NOW), hasher=TEST_HASHER)
        assert await accounts.ensure_admin("admin", "ctiwatch-demo") is None
        assert await accounts.ensure_admin("admin", "ctiwatch-demo") is None  # once
        (admin,) = await accounts.users()
        assert admin.role == "admin"
        await accounts.login("admin", "ctiwatch-demo", "127.0.0.1")


def test_the_documented_demo_password_needs_the_demo_fakes() -> None:
    demo = {"web": {"demo_admin": {"password": "ctiwatch-demo"}}}
    assert config_from_data(demo).web.demo_admin is not None  # fakes on by default
    with pytest.raises(ConfigError, match="only allowed while the demo fakes are on"):
        config_from_data({**demo, "alerting": {"fakes": False}})
    own = {"web": {"demo_admin": {"password": "a-real-secret"}}, "alerting": {"fakes": False}}
    assert config_from_data(own).web.demo_admin is not None


def test_an_empty_host_allow_list_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"web\.hosts: must name at least one host"):
        config_from_data({"web": {"hosts": []}})
