"""The broker's ACL for ctiwatch's topics, made from the configuration (``ctiwatch mqtt acl``).

Mosquitto's ``acl_file`` names topics, not settings: an ACL written by hand for ``ctiwatch/v1``
silently denies everything once ``mqtt.topic_prefix`` changes. :func:`mosquitto_acl` writes it
from the same :class:`~ctiwatch.mqtt.topics.Topics` the service and the agents publish and
subscribe with, so the two cannot drift apart; ``docker/mosquitto.acl`` is its output for the
default prefix (a test keeps them equal).
"""

from __future__ import annotations

from ctiwatch.mqtt.topics import Topics

DEFAULT_SERVICE_USER = "ctiwatch"
DEFAULT_PLATFORM_USER = "cti-platform"


class AclError(ValueError):
    """A value that cannot be written into an ACL file; ``field`` names the setting."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _plain(field: str, value: str, what: str) -> str:
    # An ACL line is ``keyword value`` up to the end of the line; in a ``pattern`` line, %u and
    # %c are replaced by the client's login and id. A prefix or login with whitespace, a
    # control character or '%' would write another rule than the one meant.
    if not value or any(ch.isspace() or not ch.isprintable() or ch == "%" for ch in value):
        raise AclError(field, f"{what} without spaces, control characters or '%', not {value!r}")
    return value


def mosquitto_acl(
    topics: Topics,
    service_user: str = DEFAULT_SERVICE_USER,
    platform_user: str | None = DEFAULT_PLATFORM_USER,
) -> str:
    """The ``acl_file`` text: the service reads everything under the prefix, the platform
    publishes call events, and every other login is an agent that may publish only its own
    results and status (``%u``: the login, which is the agent's name)."""
    prefix = _plain("mqtt.topic_prefix", topics.prefix, "a topic prefix")
    service = _plain("mqtt.username", service_user, "a login")
    lines = [
        "# Who may do what on ctiwatch's topics (acl_file of docker/mosquitto-secure.conf), made",
        f"# by `ctiwatch mqtt acl` for the topic prefix {prefix}. The logins are those of the",
        "# password file; with an acl_file, whatever is not listed here is denied.",
        "",
        "# ctiwatch's central service (mqtt.username of the central config): reads everything "
        "under the",
        "# prefix (agents' results through its shared subscription, their status, the platform's "
        "call",
        "# events) and publishes nothing.",
        f"user {service}",
        f"topic read {prefix}/#",
        "",
    ]
    if platform_user is not None:
        platform = _plain("--platform-user", platform_user, "a login")
        lines += [
            "# The CTI platform, publishing its call events (<prefix>/calls/<customer>).",
            f"user {platform}",
            f"topic write {topics.calls('#')}",
            "",
        ]
    lines += [
        "# Every login is also a probe agent of its own name (%u; `ctiwatch agent` logs in as "
        "its name):",
        "# it may publish its results and its status (and its last will there), nothing under "
        "another",
        "# agent's name, and read nothing. A message under another name is refused by the broker",
        '# ("not authorized") and never reaches ctiwatch.',
        f"pattern write {topics.results('%u')}",
        f"pattern write {topics.agent_status('%u')}",
    ]
    return "\n".join(lines) + "\n"
