"""``agent``: a remote probe agent publishing its results over MQTT."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from typing import Any

from ctiwatch.clock import RealClock
from ctiwatch.config import Config, load_config
from ctiwatch.logs import secrets_of, setup_logging
from ctiwatch.mqtt.agent import AgentPlan, plan_agent, run_agent


def register(sub: Any) -> None:
    agent = sub.add_parser(
        "agent",
        help="probe some locations and publish the results to the central service over MQTT",
    )
    agent.add_argument("--config", required=True, metavar="FILE")
    agent.add_argument("--name", help="the agent's name (default: agent.name in the config)")
    agent.add_argument(
        "--locations",
        type=_locations,
        metavar="A,B",
        help="location ids to probe (default: agent.locations, else every location)",
    )
    agent.set_defaults(func=agent_command)


def _locations(text: str) -> list[str]:
    locations = [part.strip() for part in text.split(",") if part.strip()]
    if not locations:
        raise argparse.ArgumentTypeError("--locations needs at least one location id")
    return locations


def agent_command(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    plan = plan_agent(config, args.name, args.locations)  # ConfigError: exit 2, one line each
    setup_logging(config.logging, os.environ, secrets=secrets_of(config))
    asyncio.run(_main(config, plan))
    return 0


async def _main(config: Config, plan: AgentPlan) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run_agent(config, plan, clock=RealClock(), stop=stop)
