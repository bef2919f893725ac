"""The demo's packer hands (bench/demo_parcels.py) against a real agent and mock scale."""

from __future__ import annotations

from collections.abc import Callable

from bench.demo_parcels import ParcelFeeder
from bench.stack import wait_for
from tests.e2e.conftest import Station


def _said_lines(feeder: ParcelFeeder, said: list[str], count: int) -> Callable[[], bool]:
    def done() -> bool:
        feeder.tick()
        return len(said) >= count

    return done


def test_after_each_label_the_demo_puts_the_next_parcel_on_the_scale(station: Station) -> None:
    said: list[str] = []
    grams_put: list[int] = []

    def set_weight(grams: int) -> None:
        grams_put.append(grams)
        station.stack.control("scale", "POST", "/weight", {"grams": grams, "stable": True})

    feeder = ParcelFeeder(
        station.stack.agent_url(), set_weight, said.append, headers=station.stack.agent_headers()
    )
    try:
        feeder.tick()
        assert grams_put == []  # nothing packed yet: the parcel on the scale waits for its scan

        first = station.pack("E2E-0001", "demo-packer-1")
        assert first.status_code == 200, first.text
        assert first.json()["weight_g"] == 1234
        wait_for(_said_lines(feeder, said, 1), timeout=15, what="the demo packer to change parcels")
        lifted, put = grams_put
        assert lifted == 0  # the labelled parcel comes off first
        assert put != 1234
        assert f"{put:,} g" in said[0]

        # The next scan gets the new parcel's weight, not the one the first order used.
        second = station.pack("E2E-0002", "demo-packer-2")
        assert second.status_code == 200, second.text
        assert second.json()["weight_g"] == put
        wait_for(_said_lines(feeder, said, 2), timeout=15, what="the parcel after that")
        assert grams_put[2] == 0
        assert grams_put[3] not in (1234, put)
    finally:
        feeder.close()


def test_the_demo_packer_does_nothing_while_the_agent_is_down() -> None:
    said: list[str] = []
    grams_put: list[int] = []
    feeder = ParcelFeeder("http://127.0.0.1:9", grams_put.append, said.append)  # nothing listens on 9
    try:
        for _ in range(3):
            feeder.tick()
        assert said == []
        assert grams_put == []
    finally:
        feeder.close()
