"""The display vocabulary, said once (sla/words.py) for the web, the CLI and the messages."""

from __future__ import annotations

from datetime import timedelta
from fractions import Fraction

from sla.priority import Priority
from sla.words import percent, service_name, unset_target, window_words


def test_percent_rounds_down_so_a_rate_below_a_threshold_never_reads_as_it() -> None:
    assert (percent(Fraction(188, 209)), percent(0.8995), percent(0.29), percent(1.0)) == (
        "89.9%",
        "89.9%",
        "29.0%",
        "100.0%",
    )
    assert percent(None) == "—"


def test_services_have_one_display_name_each() -> None:
    assert (service_name("click2dial"), service_name("crm"), service_name("sms")) == (
        "Click2Dial",
        "CRM integration",
        "sms",
    )


def test_priorities_have_the_slas_labels() -> None:
    assert [p.label for p in Priority] == ["Critical", "High", "Normal", "Low"]


def test_an_unset_target_is_named_in_the_slas_words() -> None:
    assert [unset_target(p) for p in (1, 2, 3, 4)] == [
        "to be determined",
        "best effort",
        "best effort",
        "best effort",
    ]


def test_windows_are_written_short() -> None:
    assert [window_words(timedelta(minutes=m)) for m in (60, 30, 90, 2880)] == [
        "1h",
        "30m",
        "1h 30m",
        "2d",
    ]
