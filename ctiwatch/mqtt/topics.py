"""Topic names: built and parsed in one place."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# Longer topics are none of ours (ours are the prefix and at most 80 characters more).
MAX_TOPIC_LENGTH = 512


class TopicKind(StrEnum):
    RESULTS = "results"
    CALLS = "calls"
    AGENT_STATUS = "agent_status"


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    kind: TopicKind
    # The agent for results and status topics, the customer for call topics.
    name: str


@dataclass(frozen=True, slots=True)
class Topics:
    """The topics under one prefix (``mqtt.topic_prefix``)."""

    prefix: str = "ctiwatch/v1"

    def results(self, agent: str) -> str:
        return f"{self.prefix}/results/{agent}"

    def calls(self, customer: str) -> str:
        return f"{self.prefix}/calls/{customer}"

    def agent_status(self, agent: str) -> str:
        return f"{self.prefix}/agents/{agent}/status"

    def subscriptions(self, shared_group: str | None) -> list[str]:
        """What a central worker subscribes to.

        Results and calls are shared between the workers of ``shared_group`` (each message
        goes to one of them). Agent status is not shared: every worker keeps the whole
        picture, and a shared subscription would never receive the retained statuses.
        """
        share = f"$share/{shared_group}/" if shared_group else ""
        return [
            f"{share}{self.prefix}/results/+",
            f"{share}{self.prefix}/calls/+",
            f"{self.prefix}/agents/+/status",
        ]

    def parse(self, topic: str) -> ParsedTopic | None:
        """What a received topic is, or ``None`` when it is none of ours."""
        head = f"{self.prefix}/"
        if len(topic) > MAX_TOPIC_LENGTH or not topic.startswith(head):
            return None
        parts = topic[len(head) :].split("/")
        if len(parts) == 2 and parts[0] == "results" and parts[1]:
            return ParsedTopic(TopicKind.RESULTS, parts[1])
        if len(parts) == 2 and parts[0] == "calls" and parts[1]:
            return ParsedTopic(TopicKind.CALLS, parts[1])
        if len(parts) == 3 and parts[0] == "agents" and parts[1] and parts[2] == "status":
            return ParsedTopic(TopicKind.AGENT_STATUS, parts[1])
        return None
