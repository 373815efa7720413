"""``mqtt acl``: the broker's ACL for the configuration's topic prefix and logins.

    ctiwatch mqtt acl --config config/production.example.yaml > /etc/mosquitto/acl

The service's login is ``mqtt.username`` (``ctiwatch`` when the file sets none), the prefix
``mqtt.topic_prefix``; every other login of the password file is an agent of its own name.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ctiwatch.config import ConfigError, load_config
from ctiwatch.mqtt.acl import DEFAULT_PLATFORM_USER, DEFAULT_SERVICE_USER, AclError, mosquitto_acl
from ctiwatch.mqtt.topics import Topics


def register(sub: Any) -> None:
    mqtt = sub.add_parser("mqtt", help="the MQTT broker's ACL for this configuration")
    commands = mqtt.add_subparsers(dest="mqtt_command", required=True, metavar="COMMAND")
    acl = commands.add_parser(
        "acl", help="print the Mosquitto acl_file for mqtt.topic_prefix and mqtt.username"
    )
    acl.add_argument("--config", metavar="FILE", help="the central service's configuration")
    acl.add_argument(
        "--platform-user",
        default=DEFAULT_PLATFORM_USER,
        metavar="LOGIN",
        help=f"the CTI platform's login, publishing call events (default {DEFAULT_PLATFORM_USER})",
    )
    acl.add_argument("--no-platform", action="store_true", help="no login may publish call events")
    acl.add_argument("--output", metavar="FILE", help="write the ACL to FILE instead of stdout")
    acl.set_defaults(func=acl_command)


def acl_command(args: argparse.Namespace) -> int:
    mqtt = load_config(args.config).mqtt
    try:
        text = mosquitto_acl(
            Topics(mqtt.topic_prefix),
            mqtt.username or DEFAULT_SERVICE_USER,
            None if args.no_platform else args.platform_user,
        )
    except AclError as exc:
        raise ConfigError([str(exc)]) from None
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"error: --output: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
        return 2
    return 0
