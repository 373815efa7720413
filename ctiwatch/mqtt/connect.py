"""How ctiwatch's MQTT clients reach the broker: TLS and login from ``mqtt``, and a refused
connection explained in the words of the configuration.

The agent and the central ingestion both build their clients' options here, so both speak TLS
and log in the same way. A refusal the broker states (wrong login, a certificate that does not
verify) is a problem a person must fix, not an outage: :func:`explain` says which, and which
setting to look at, and the caller logs it at ERROR and keeps retrying with backoff (the broker's
password file or the certificate may be fixed while it runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from ctiwatch.config import MqttConfig

# MQTT 5 CONNACK reason codes of a login the broker refuses.
_BAD_LOGIN = 0x86  # bad user name or password
_NOT_AUTHORIZED = 0x87  # Mosquitto's answer to a wrong password or a refused will topic
_CONNACK_NOT_AUTHORIZED = (4, 5)  # MQTT 3.1.1


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a connection failed: ``refused`` when the broker (or its certificate) said no, which
    retrying alone will not fix."""

    text: str
    refused: bool


def client_options(mqtt: MqttConfig, *, username: str | None) -> dict[str, Any]:
    """Keyword arguments of :class:`aiomqtt.Client` for login and TLS.

    ``username`` is the login (an agent's is its own name); the password is ``mqtt.password``.
    A TLS file that became unreadable since the configuration was loaded raises
    :class:`aiomqtt.MqttError` naming the setting, so the caller retries like any connection
    failure.
    """
    options: dict[str, Any] = {
        "username": username,
        "password": mqtt.password if username else None,
    }
    if mqtt.tls.enabled:
        try:
            options["tls_context"] = mqtt.tls.context()
        except ValueError as exc:
            raise aiomqtt.MqttError(f"mqtt.tls.{exc}") from None
    return options


def explain(exc: aiomqtt.MqttError, mqtt: MqttConfig, username: str | None) -> Problem:
    """``exc`` in the configuration's words."""
    text = str(exc)
    login = f"user {username!r}" if username else "an anonymous client (no mqtt.username)"
    if isinstance(exc, MqttConnectError) and _is_login_refusal(exc.rc):
        return Problem(
            f"the broker refused the login of {login} ({text}): "
            "check mqtt.username and mqtt.password (and the broker's password file and ACL)",
            refused=True,
        )
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return Problem(
            f"TLS: the broker's certificate does not verify ({text}): check mqtt.tls.ca_file "
            "and that the certificate names mqtt.host",
            refused=True,
        )
    tls_on_plain = "WRONG_VERSION_NUMBER" in text or "Connection reset by peer" in text
    if mqtt.tls.enabled and tls_on_plain:
        return Problem(
            f"TLS: the broker's port does not answer TLS ({text}): "
            "mqtt.tls.enabled is set; is mqtt.port its TLS listener?",
            refused="WRONG_VERSION_NUMBER" in text,  # a reset may also be a broker going away
        )
    if text.startswith(("mqtt.tls.", "the broker refused the subscription")):
        return Problem(text, refused=True)
    if text == "Operation timed out" and not mqtt.tls.enabled:
        return Problem(
            f"{text}: no MQTT answer from the broker; if mqtt.port is a TLS listener, "
            "set mqtt.tls.enabled",
            refused=False,
        )
    return Problem(text, refused=False)


def _is_login_refusal(rc: Any) -> bool:
    value = getattr(rc, "value", rc)
    if hasattr(rc, "value"):  # an MQTT 5 reason code
        return value in (_BAD_LOGIN, _NOT_AUTHORIZED)
    return value in _CONNACK_NOT_AUTHORIZED
