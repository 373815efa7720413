"""``python -m ctiwatch.web.demo [--port 8090]``: the console over the in-memory fake."""

from __future__ import annotations

import argparse

import prometheus_client
from aiohttp import web

from ctiwatch.clock import RealClock
from ctiwatch.web.app import build_web_app
from ctiwatch.web.fake_service import demo_service


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ctiwatch.web.demo")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args(argv)
    app = build_web_app(
        demo_service(RealClock()), metrics_registry=prometheus_client.CollectorRegistry()
    )
    web.run_app(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
