"""Calling a carrier's label API from the cloud: the adapter a carrier account names, opened and
closed around each call; how often one label's purchase or void is tried, and how many rows one
background round reads at a time (so a round's calls stay bounded).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from cloud.shipping.carrier_api import CarrierApi, CarrierApiError
from cloud.shipping.shipstation import ADAPTER as SHIPSTATION
from cloud.shipping.shipstation import ShipStationApi

__all__ = ["MAX_ATTEMPTS", "ROUND_ROWS", "AdapterFactory", "default_adapter", "open_adapter"]

# How often the cloud tries one label (a purchase or a void) before a person is asked.
MAX_ATTEMPTS = 5
ROUND_ROWS = 500

AdapterFactory = Callable[[str, str], CarrierApi]


def default_adapter(adapter: str, secret: str) -> CarrierApi:
    """The adapter a carrier account names, with its API key."""
    if adapter == SHIPSTATION:
        return ShipStationApi.from_env(secret)
    raise CarrierApiError(
        f"there is no carrier API adapter {adapter[:32]!r}: use {SHIPSTATION!r}", code="carrier_api_adapter"
    )


@contextmanager
def open_adapter(factory: AdapterFactory, name: str, secret: str) -> Iterator[CarrierApi]:
    """The adapter `factory` makes for a carrier account, closed after the call."""
    api = factory(name, secret)
    try:
        yield api
    finally:
        close = getattr(api, "close", None)
        if callable(close):
            close()
