"""The ShipStation API (formerly ShipEngine) adapter: buy a parcel's label, void it.

Two calls of the public API v2, as docs.shipstation.com gives them:

    POST /v2/labels                    API-Key: <key>, Content-Type: application/json
        {"shipment": {"carrier_id"?, "service_code", "ship_to": {...}, "ship_from": {...},
                      "packages": [{"weight": {"value", "unit": "gram"},
                                    "dimensions"?: {"unit": "centimeter", "length", "width", "height"}}]},
         "label_format": "zpl" | "pdf" | "png", "label_layout": "4x6", "label_download_type": "url"}
      -> 200 {"label_id", "status": "completed", "tracking_number", "carrier_code", "service_code",
              "shipment_cost": {"currency", "amount"}, "label_format",
              "label_download": {"href", "pdf", "png", "zpl"}}   (URLs on the API's own host)
      -> 4xx {"request_id", "errors": [{"error_source", "error_type", "error_code", "message"}]}
    PUT /v2/labels/{label_id}/void     API-Key: <key>
      -> 200 {"approved": bool, "message", "reason_code"?}

The label's bytes are then fetched from `label_download` (its URL for the asked format, else
`href`), only from the API's own origin: a response cannot send the cloud, with its API key, to
another host. Each response is read up to a bound (a label's JSON is a few kilobytes; a label at
most dockside.shipping.parcels.MAX_LABEL_BYTES) and within a deadline, so a slow or endless answer
ends as CarrierApiUnavailable rather than a stuck release. Redirects are not followed.

If ShipStation sold a label but the answer is unusable (no tracking number, a download that is not
a label), the label is voided at once so it is not charged, and the error says whether that
worked (`may_have_bought` when it did not).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import time
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Self

import httpx

from cloud.shipping.carrier_api import (
    CarrierApiError,
    CarrierApiRefused,
    CarrierApiUnavailable,
    LabelRequest,
    PurchasedLabel,
)
from dockside.orders import Address, Money
from dockside.shipping.parcels import MAX_LABEL_BYTES, LabelDocument, LabelFormat

__all__ = ["ADAPTER", "BASE_URL_ENV", "DEFAULT_BASE_URL", "ShipStationApi"]

log = logging.getLogger(__name__)

ADAPTER = "shipstation"
DEFAULT_BASE_URL = "https://api.shipstation.com"
# Where the cloud finds the API instead (a sandbox, or the local stand-in of the tests and demo).
BASE_URL_ENV = "DOCKSIDE_SHIPSTATION_URL"
_MAX_JSON_BYTES = 1024 * 1024
_DEFAULT_TIMEOUT_S = 30.0
_LABEL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SERVICE_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_TRACKING = re.compile(r"^[A-Z0-9]{1,40}$")
_API_KEY = re.compile(r"^[\x21-\x7e]{1,500}$")
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
_MAGIC = {
    LabelFormat.PDF: (b"%PDF-",),
    LabelFormat.PNG: (b"\x89PNG\r\n\x1a\n",),
    LabelFormat.ZPL: (b"^XA", b"~"),
}


def _address(address: Address) -> dict[str, str]:
    body = {
        "name": address.name,
        "phone": address.phone,
        "address_line1": address.street,
        "city_locality": address.city,
        "state_province": address.region,
        "postal_code": address.postal_code,
        "country_code": address.country,
        "address_residential_indicator": "unknown",
    }
    if address.company:
        body["company_name"] = address.company
    if address.street2:
        body["address_line2"] = address.street2
    return body


def _shown(value: object, limit: int = 120) -> str:
    """A value from a response, safe and short enough to put in an error message."""
    text = value if isinstance(value, str) else repr(value)
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit else text[:limit] + "..."


class ShipStationApi:
    """A CarrierApi for one ShipStation API account (its API key)."""

    name = ADAPTER

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout_s: float = _DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not isinstance(api_key, str) or not _API_KEY.match(api_key):
            raise CarrierApiRefused(
                "the ShipStation API key must be 1 to 500 printable ASCII characters without spaces: "
                "copy it again from ShipStation's API settings",
                code="carrier_api_key",
            )
        url = httpx.URL(base_url)
        if url.scheme not in ("https", "http") or (url.scheme == "http" and url.host not in _LOOPBACK):
            raise CarrierApiRefused(
                f"the ShipStation base URL must be https (http only on loopback), got {_shown(base_url)}",
                code="carrier_api_url",
            )
        if not 0 < timeout_s <= 300:
            raise ValueError(f"timeout_s is a number of seconds in (0, 300], got {timeout_s}")
        self._origin = _origin(url)
        self._timeout_s = timeout_s
        self._client = httpx.Client(
            base_url=url,
            headers={"API-Key": api_key, "Accept": "application/json"},
            timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
            follow_redirects=False,
            trust_env=False,
            transport=transport,
        )

    @classmethod
    def from_env(cls, api_key: str, environ: Mapping[str, str] | None = None) -> ShipStationApi:
        """The adapter for a carrier account's API key, at $DOCKSIDE_SHIPSTATION_URL if that is set."""
        env = os.environ if environ is None else environ
        return cls(api_key, base_url=env.get(BASE_URL_ENV, "").strip() or DEFAULT_BASE_URL)

    def close(self) -> None:
        """Close the connections kept to the API."""
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- the two calls ---------------------------------------------------------------------------

    def create_label(self, request: LabelRequest) -> PurchasedLabel:
        """Buy the label of one parcel (POST /v2/labels) and download its bytes."""
        if not _SERVICE_CODE.match(request.service):
            raise CarrierApiRefused(
                f"{_shown(request.service)} is not a ShipStation service code (like 'ups_ground'): "
                "set the ruleset's service for this carrier",
                code="carrier_api_service",
            )
        if not 0 < request.weight_g <= 1_000_000:
            raise CarrierApiRefused(
                f"parcel {request.parcel} of order {request.order_ref} weighs {request.weight_g} g: "
                "a label needs a weight from 1 g to 1000 kg",
                code="carrier_api_weight",
            )
        if request.carrier_account and not _LABEL_ID.match(request.carrier_account):
            raise CarrierApiRefused(
                f"{_shown(request.carrier_account)} is not a ShipStation carrier id (like 'se-123456')",
                code="carrier_api_carrier",
            )
        package: dict[str, Any] = {"weight": {"value": request.weight_g, "unit": "gram"}}
        if request.dimensions_mm is not None:
            length, width, height = (Decimal(mm) / 10 for mm in request.dimensions_mm)
            package["dimensions"] = {
                "unit": "centimeter",
                "length": float(length),
                "width": float(width),
                "height": float(height),
            }
        shipment: dict[str, Any] = {
            "service_code": request.service,
            "ship_to": _address(request.ship_to),
            "ship_from": _address(request.ship_from),
            "packages": [package],
        }
        if request.carrier_account:
            shipment["carrier_id"] = request.carrier_account
        body = {
            "shipment": shipment,
            "label_format": request.label_format.value,
            "label_layout": "4x6",
            "label_download_type": "url",
        }
        what = f"the label of parcel {request.parcel} of order {request.order_ref}"
        answer = self._call("POST", "/v2/labels", body, what=what, buying=True)
        label_id = answer.get("label_id")
        if not isinstance(label_id, str) or not _LABEL_ID.match(label_id):
            raise CarrierApiError(
                f"ShipStation answered {what} without a usable label_id ({_shown(label_id)}): a label may "
                "have been bought; look for it in ShipStation before buying again",
                code="carrier_api_bad_response",
                may_have_bought=True,
            )
        try:
            return self._purchased(answer, label_id, request, what)
        except CarrierApiError as exc:
            raise self._void_after(label_id, exc) from exc

    def void_label(self, label_id: str) -> bool:
        """Void a label (PUT /v2/labels/{label_id}/void): whether ShipStation approved it."""
        if not isinstance(label_id, str) or not _LABEL_ID.match(label_id):
            raise CarrierApiRefused(
                f"{_shown(label_id)} is not a ShipStation label id (like 'se-28529731')",
                code="carrier_api_label_id",
            )
        answer = self._call("PUT", f"/v2/labels/{label_id}/void", None, what=f"void of label {label_id}")
        approved = answer.get("approved")
        if not isinstance(approved, bool):
            raise CarrierApiError(
                f"ShipStation answered the void of label {label_id} without 'approved': check the label "
                "in ShipStation",
                code="carrier_api_bad_response",
            )
        if not approved:
            log.warning(
                "ShipStation declined to void label %s: %s (%s)",
                label_id,
                _shown(answer.get("message", "")),
                _shown(answer.get("reason_code", "")),
            )
        return approved

    # -- the pieces ------------------------------------------------------------------------------

    def _purchased(
        self, answer: Mapping[str, Any], label_id: str, request: LabelRequest, what: str
    ) -> PurchasedLabel:
        status = answer.get("status")
        if status != "completed":
            raise CarrierApiError(
                f"ShipStation's label {label_id} for {what} is {_shown(status)}, not completed",
                code="carrier_api_label_status",
            )
        tracking = answer.get("tracking_number")
        tracking = tracking.strip().upper().replace(" ", "") if isinstance(tracking, str) else tracking
        if not isinstance(tracking, str) or not _TRACKING.match(tracking):
            raise CarrierApiError(
                f"ShipStation's label {label_id} for {what} has no usable tracking number "
                f"({_shown(tracking)}): 1 to 40 letters and digits",
                code="carrier_api_bad_response",
            )
        downloads = answer.get("label_download")
        url = None
        if isinstance(downloads, Mapping):
            url = downloads.get(request.label_format.value) or downloads.get("href")
        if not isinstance(url, str) or not url:
            raise CarrierApiError(
                f"ShipStation's label {label_id} for {what} has no label_download URL",
                code="carrier_api_bad_response",
            )
        data = self._download(url, label_id)
        if not data.lstrip()[:8].startswith(_MAGIC[request.label_format]):
            raise CarrierApiError(
                f"ShipStation's download of label {label_id} is not a {request.label_format.value.upper()} "
                f"file (it starts {_shown(data[:16])})",
                code="carrier_api_bad_label",
            )
        carrier = answer.get("carrier_code")
        service = answer.get("service_code")
        return PurchasedLabel(
            label_id=label_id,
            tracking_number=tracking,
            label=LabelDocument(format=request.label_format, data_base64=base64.b64encode(data).decode()),
            carrier=carrier[:32] if isinstance(carrier, str) else "",
            service=service[:32] if isinstance(service, str) else request.service[:32],
            cost=_money(answer.get("shipment_cost")),
        )

    def _void_after(self, label_id: str, problem: CarrierApiError) -> CarrierApiError:
        """Void a label sold with an unusable answer; the error to raise says whether it worked."""
        try:
            voided = self.void_label(label_id)
        except CarrierApiError as exc:
            voided, why = False, exc.message
        else:
            why = "ShipStation declined"
        if voided:
            return type(problem)(f"{problem.message}; label {label_id} was voided", code=problem.code)
        return type(problem)(
            f"{problem.message}; label {label_id} could not be voided ({why}): void it in ShipStation",
            code=problem.code,
            may_have_bought=True,
        )

    def _download(self, url: str, label_id: str) -> bytes:
        try:
            target = httpx.URL(url)
        except (httpx.InvalidURL, UnicodeError, ValueError):
            target = None
        if target is None or _origin(target) != self._origin:
            raise CarrierApiError(
                f"ShipStation's label {label_id} is to be downloaded from {_shown(url)}, not from the "
                "API's own host: refused",
                code="carrier_api_bad_response",
            )
        status, data = self._exchange(
            "GET", target, None, what=f"download of label {label_id}", limit=MAX_LABEL_BYTES
        )
        if status != 200:
            raise CarrierApiUnavailable(
                f"ShipStation answered the download of label {label_id} with HTTP {status}",
                code="carrier_api_download",
            )
        return data

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None, *, what: str, buying: bool = False
    ) -> dict[str, Any]:
        """One JSON call: its answer as a dict, or the CarrierApiError its status and body mean."""
        status, data = self._exchange(method, path, body, what=what, limit=_MAX_JSON_BYTES, buying=buying)
        try:
            answer = json.loads(data)
        except (ValueError, RecursionError):
            answer = None
        if 200 <= status < 300:
            if not isinstance(answer, dict):
                raise CarrierApiError(
                    f"ShipStation answered {what} with HTTP {status} but not a JSON object "
                    f"({_shown(data[:60])})"
                    + (": a label may have been bought, look for it" if buying else ""),
                    code="carrier_api_bad_response",
                    may_have_bought=buying,
                )
            return answer
        detail = _first_error(answer)
        if status == 429 or status >= 500:
            raise CarrierApiUnavailable(
                f"ShipStation could not handle {what} (HTTP {status}{detail}): try again later"
                + (
                    ", after checking ShipStation for a label already bought"
                    if buying and status >= 500
                    else ""
                ),
                may_have_bought=buying and status >= 500,
            )
        if status in (401, 403):
            raise CarrierApiRefused(
                f"ShipStation refused the API key for {what} (HTTP {status}{detail}): set the carrier "
                "account's key again",
                code="carrier_api_key",
            )
        if 400 <= status < 500:
            raise CarrierApiRefused(
                f"ShipStation refused {what} (HTTP {status}{detail}): fix it and try again"
            )
        raise CarrierApiError(
            f"ShipStation answered {what} with HTTP {status} (redirects are not followed): "
            "check the base URL",
            may_have_bought=buying,
        )

    def _exchange(
        self,
        method: str,
        url: str | httpx.URL,
        body: dict[str, Any] | None,
        *,
        what: str,
        limit: int,
        buying: bool = False,
    ) -> tuple[int, bytes]:
        """Send one request; its status and at most `limit` bytes of body, within the deadline."""
        deadline = time.monotonic() + self._timeout_s
        try:
            with self._client.stream(method, url, json=body) as response:
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise _too_big(what, int(declared), limit, buying)
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise _too_big(what, size, limit, buying)
                    if time.monotonic() > deadline:
                        raise CarrierApiUnavailable(
                            f"ShipStation took longer than {self._timeout_s:g} s to answer {what}: "
                            "try again later",
                            code="carrier_api_timeout",
                            may_have_bought=buying,
                        )
                    chunks.append(chunk)
                return response.status_code, b"".join(chunks)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise CarrierApiUnavailable(
                f"could not connect to ShipStation for {what} ({type(exc).__name__}): try again later",
                code="carrier_api_unreachable",
            ) from exc
        except httpx.TimeoutException as exc:
            raise CarrierApiUnavailable(
                f"ShipStation did not answer {what} within {self._timeout_s:g} s: try again later"
                + (", after checking ShipStation for a label already bought" if buying else ""),
                code="carrier_api_timeout",
                may_have_bought=buying,
            ) from exc
        except httpx.HTTPError as exc:
            raise CarrierApiUnavailable(
                f"the connection to ShipStation broke during {what} ({type(exc).__name__}): try again later",
                may_have_bought=buying,
            ) from exc


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    """Scheme, host and port (the scheme's default when none is written) of a URL."""
    return url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80)


def _too_big(what: str, size: int, limit: int, buying: bool) -> CarrierApiError:
    return CarrierApiError(
        f"ShipStation's answer to {what} is over {limit:,} bytes ({size:,} so far): not a label answer",
        code="carrier_api_bad_response",
        may_have_bought=buying,
    )


def _first_error(answer: object) -> str:
    """`: <message> (<error_code>)` of a ShipStation error body's first error, or ""."""
    if not isinstance(answer, dict) or not isinstance(answer.get("errors"), list) or not answer["errors"]:
        return ""
    first = answer["errors"][0]
    if not isinstance(first, dict):
        return ""
    message = _shown(first.get("message", ""), 200)
    code = first.get("error_code")
    return f": {message}" + (f" ({_shown(code, 40)})" if isinstance(code, str) and code else "")


def _money(cost: object) -> Money | None:
    """ShipStation's shipment_cost as Money, or None if it is missing or malformed."""
    if not isinstance(cost, dict):
        return None
    amount, currency = cost.get("amount"), cost.get("currency")
    if isinstance(amount, bool) or not isinstance(amount, (int, float, str)) or not isinstance(currency, str):
        return None
    try:
        return Money(amount=Decimal(str(amount)).quantize(Decimal("0.01")), currency=currency.upper())
    except (InvalidOperation, ValueError):
        return None
