"""The CLI imports only the module of the command being run; the map must stay true."""

from __future__ import annotations

import argparse
import importlib

import pytest

from ctiwatch.cli import COMMANDS, build_parser


def _registered(module: str) -> set[str]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    importlib.import_module(module).register(sub)
    return set(sub.choices)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_is_registered_by_the_module_the_map_names(command: str) -> None:
    assert command in _registered(COMMANDS[command])


def test_every_registered_command_is_in_the_map() -> None:
    registered = set().union(*(_registered(module) for module in set(COMMANDS.values())))
    assert registered == set(COMMANDS)


def test_help_without_a_command_lists_every_command() -> None:
    parser = build_parser([])
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(action.choices) == set(COMMANDS)
