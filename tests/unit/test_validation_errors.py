"""One translator of pydantic errors (``ctiwatch.errors``): the configuration, scenarios, faults,
console/API requests and MQTT payloads all report through it, naming the entity and field."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ctiwatch.config import ConfigError, TopologyConfig, config_from_data
from ctiwatch.errors import Problem, problems
from ctiwatch.mqtt.schema import PayloadError, TopologyIndex, decode_results
from ctiwatch.web.inputs import PriorityBody, parse_json
from ctiwatch.web.service import ServiceError

ROOT = Path(__file__).resolve().parents[2]


class Location(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    users: list[str] = Field(min_length=1)


class Customer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    locations: list[Location]


def validation_error(model: type[BaseModel], data: object) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return caught.value


def test_a_problem_names_list_items_by_their_id_when_the_data_is_given() -> None:
    data = {"id": "acme", "locations": [{"id": "ams", "users": []}]}
    assert problems(validation_error(Customer, data), data) == [
        Problem("locations[ams].users", "locations", "must not be empty", "too_short")
    ]


def test_without_the_data_list_items_are_named_by_index() -> None:
    data = {"id": "acme", "locations": [{"id": "ams", "users": []}]}
    [problem] = problems(validation_error(Customer, data))
    assert str(problem) == "locations[0].users: must not be empty"


def test_an_audience_words_a_problem_its_own_way() -> None:
    data = {"id": "acme", "locations": [{"id": "ams", "users": ["a"], "colour": 3}]}
    words = {"extra_forbidden": "unknown field{got}"}
    [problem] = problems(validation_error(Customer, data), words=words, show=str)
    assert str(problem) == "locations[0].colour: unknown field, not 3"


def test_an_unknown_config_key_suggests_the_closest_one() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_data({"probes": {"intervall": "60s"}})
    assert caught.value.errors == [
        "probes.intervall: unknown key (check the spelling; did you mean 'interval'?)"
    ]


def test_the_api_names_the_field_of_its_first_problem() -> None:
    with pytest.raises(ServiceError) as caught:
        parse_json(PriorityBody, b'{"actor": "Ann", "priority": 7, "reason": "worse"}')
    assert (caught.value.message, caught.value.field) == ("priority: must be 1, 2, 3 or 4",
                                                          "priority")  # fmt: skip


def test_an_mqtt_payload_problem_names_the_result_by_index() -> None:
    with pytest.raises(PayloadError) as caught:
        decode_results(
            '{"schema": "ctiwatch.results/1", "agent": "a", "results": [{}]}',
            TopologyIndex(TopologyConfig()),
            now=datetime(2025, 1, 6, 9, 0, tzinfo=UTC),
        )
    assert caught.value.reason == "invalid_payload"
    assert caught.value.message == (
        "sent_at: is required; results[0].result_id: is required; results[0].service: is "
        "required; results[0].customer: is required; results[0].location: is required; and 6 "
        "more errors"
    )


def test_only_the_translator_reads_pydantic_errors() -> None:
    readers = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "ctiwatch").rglob("*.py"))
        if re.search(r"\.errors\((include_url=False)?\)", path.read_text(encoding="utf-8"))
    ]
    assert readers == ["ctiwatch/errors.py"]
