"""``ctiwatch simulate SCENARIO.yaml [--config FILE]`` (contract: ``shared/spec/simulate.md``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ctiwatch.config import load_config
from ctiwatch.scenario import load_scenario
from ctiwatch.simulate import result_json, run_simulation


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "simulate",
        help="run a scenario through the whole pipeline in virtual time; JSON on stdout",
    )
    parser.add_argument("scenario", help="scenario file (YAML)")
    parser.add_argument("--config", help="configuration file (default: embedded defaults)")
    parser.add_argument("--indent", type=int, default=None, help="pretty-print the JSON")
    parser.set_defaults(func=simulate)


def simulate(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    scenario = load_scenario(args.scenario)
    result = run_simulation(config, scenario)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    json.dump(result_json(result), sys.stdout, indent=args.indent)
    sys.stdout.write("\n")
    return 0
