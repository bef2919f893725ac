"""A local ShipStation API v2 for tests: the documented create-label and void-label calls, on loopback.

It implements what docs.shipstation.com gives for

    POST /v2/labels                  (API-Key header, JSON body: shipment + label_format ...)
    PUT  /v2/labels/{label_id}/void  (API-Key header) -> {"approved", "message", "reason_code"?}
    GET  /v2/downloads/...           the label_download URLs of a created label

and checks each request's shape as the documentation describes it: a request that is not
shaped so is answered 400 in ShipStation's error shape and its problem recorded in `problems`,
so a test fails if the adapter drifts from the documented API. `mode` makes it misbehave the way
a real API or network can: a 500, a body that is not JSON, no tracking number, an answer that
never ends or never comes, a download from another host, a download that is not a label.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

__all__ = ["API_KEY", "ShipStationServer", "shipstation_server"]

API_KEY = "TEST_a1b2c3d4e5f6"
ZPL_LABEL = b"^XA^FO50,50^BCN,100,Y,N,N^FD1Z999AA10123456784^FS^XZ\n"
PDF_LABEL = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG_LABEL = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
_LABELS = {"zpl": ZPL_LABEL, "pdf": PDF_LABEL, "png": PNG_LABEL}

_ADDRESS_REQUIRED = ("name", "address_line1", "city_locality", "postal_code", "country_code")
_ADDRESS_KNOWN = {
    *_ADDRESS_REQUIRED,
    "phone",
    "company_name",
    "address_line2",
    "address_line3",
    "state_province",
    "address_residential_indicator",
    "email",
}
_WEIGHT_UNITS = {"pound", "ounce", "gram", "kilogram"}
_DIMENSION_UNITS = {"inch", "centimeter"}
_BODY_KNOWN = {
    "shipment",
    "label_format",
    "label_layout",
    "label_download_type",
    "is_return_label",
    "test_label",
}
_SHIPMENT_KNOWN = {
    "carrier_id",
    "service_code",
    "ship_to",
    "ship_from",
    "packages",
    "ship_date",
    "external_shipment_id",
}


def _address_problems(where: str, address: object) -> list[str]:
    if not isinstance(address, dict):
        return [f"{where} is not an object"]
    problems = [f"{where}.{key} is missing or empty" for key in _ADDRESS_REQUIRED if not address.get(key)]
    problems += [
        f"{where}.{key} is not a documented address field" for key in address if key not in _ADDRESS_KNOWN
    ]
    problems += [f"{where}.{key} is not text" for key, value in address.items() if not isinstance(value, str)]
    country = address.get("country_code")
    if isinstance(country, str) and (len(country) != 2 or not country.isupper()):
        problems.append(f"{where}.country_code is not an ISO 3166 alpha-2 code")
    if address.get("address_residential_indicator", "unknown") not in ("unknown", "yes", "no"):
        problems.append(f"{where}.address_residential_indicator is not unknown, yes or no")
    return problems


def label_request_problems(body: object) -> list[str]:
    """What is wrong with a POST /v2/labels body, against the documented request."""
    if not isinstance(body, dict):
        return ["the body is not a JSON object"]
    problems = [f"{key} is not a documented field of the request" for key in body if key not in _BODY_KNOWN]
    if body.get("label_format") not in ("pdf", "png", "zpl"):
        problems.append("label_format is not pdf, png or zpl")
    if body.get("label_layout", "4x6") not in ("4x6", "letter"):
        problems.append("label_layout is not 4x6 or letter")
    if body.get("label_download_type", "url") not in ("url", "inline"):
        problems.append("label_download_type is not url or inline")
    shipment = body.get("shipment")
    if not isinstance(shipment, dict):
        return [*problems, "shipment is missing"]
    problems += [
        f"shipment.{key} is not a documented field" for key in shipment if key not in _SHIPMENT_KNOWN
    ]
    if not isinstance(shipment.get("service_code"), str) or not shipment["service_code"]:
        problems.append("shipment.service_code is missing")
    problems += _address_problems("shipment.ship_to", shipment.get("ship_to"))
    problems += _address_problems("shipment.ship_from", shipment.get("ship_from"))
    packages = shipment.get("packages")
    if not isinstance(packages, list) or not packages:
        return [*problems, "shipment.packages is not a non-empty list"]
    for index, package in enumerate(packages):
        weight = package.get("weight") if isinstance(package, dict) else None
        if (
            not isinstance(weight, dict)
            or weight.get("unit") not in _WEIGHT_UNITS
            or not isinstance(weight.get("value"), int | float)
            or weight["value"] <= 0
        ):
            problems.append(f"shipment.packages[{index}].weight is not {{value > 0, unit}}")
        dimensions = package.get("dimensions") if isinstance(package, dict) else None
        if dimensions is not None and (
            not isinstance(dimensions, dict)
            or dimensions.get("unit") not in _DIMENSION_UNITS
            or not all(isinstance(dimensions.get(k), int | float) for k in ("length", "width", "height"))
        ):
            problems.append(f"shipment.packages[{index}].dimensions is not {{unit, length, width, height}}")
    return problems


class ShipStationServer:
    """The local API. `mode` (default "ok") picks a misbehaviour for the calls that follow."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.requests: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.labels: dict[str, dict[str, Any]] = {}
        self.voided: set[str] = set()
        # Tracking numbers to hand out, one a label (the documentation's example when empty).
        self.tracking: list[str] = []
        self.release = threading.Event()  # set to free a handler that is holding its answer back
        self.lock = threading.Lock()
        self._next = 147980607
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                server._handle(self, "POST")

            def do_PUT(self) -> None:
                server._handle(self, "PUT")

            def do_GET(self) -> None:
                server._handle(self, "GET")

            def log_message(self, *_args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    # -- answering -------------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        with self.lock:
            mode = self.mode
            self.requests.append(
                {"method": method, "path": handler.path, "headers": dict(handler.headers), "body": raw}
            )
        if handler.headers.get("API-Key") != API_KEY:
            self._problem(f"{method} {handler.path} without the API-Key header")
            self._error(
                handler, 401, "unauthorized", "The API key is invalid. Please see https://www.shipengine.com"
            )
            return
        if method == "POST" and handler.path == "/v2/labels":
            self._create(handler, raw, mode)
        elif method == "PUT" and handler.path.startswith("/v2/labels/") and handler.path.endswith("/void"):
            self._void(handler, handler.path[len("/v2/labels/") : -len("/void")], raw)
        elif method == "GET" and handler.path.startswith("/v2/downloads/"):
            self._download(handler, handler.path, mode)
        else:
            self._problem(f"{method} {handler.path} is not a documented call")
            self._error(handler, 404, "not_found", "not found")

    def _create(self, handler: BaseHTTPRequestHandler, raw: bytes, mode: str) -> None:
        if handler.headers.get("Content-Type", "").split(";")[0] != "application/json":
            self._problem("POST /v2/labels without Content-Type: application/json")
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        problems = label_request_problems(body)
        if problems:
            for problem in problems:
                self._problem(problem)
            self._error(handler, 400, "invalid_field_value", problems[0])
            return
        if mode == "refuse_address":
            self._error(handler, 400, "invalid_address", "Invalid ship_to address: postal_code not found")
            return
        if mode == "status_500":
            self._send(handler, 500, b'{"request_id": "x", "errors": [{"message": "Internal error"}]}')
            return
        if mode == "rate_limited":
            self._error(handler, 429, "rate_limit_exceeded", "You have exceeded the rate limit.")
            return
        if mode == "not_json":
            self._send(handler, 200, b"<html><body>Gateway maintenance</body></html>", "text/html")
            return
        if mode == "slow":
            self.release.wait(30)
            return
        if mode == "endless":
            self._endless(handler)
            return
        if mode == "huge":
            self._send(handler, 200, b'{"label_id": "se-1", "padding": "' + b"x" * (2 * 1024 * 1024) + b'"}')
            return
        with self.lock:
            self._next += 1
            label_id = f"se-{self._next}"
            tracking = self.tracking.pop(0) if self.tracking else "1Z999AA10123456784"
        fmt = body["label_format"]
        base = f"{self.url}/v2/downloads/6/3TidbpFJOkm4RmWzQ-woyQ/label-{label_id[3:]}"
        downloads = {kind: f"{base}.{kind}" for kind in ("pdf", "png", "zpl")}
        downloads["href"] = downloads[fmt]
        if mode == "download_elsewhere":
            downloads = {"href": f"http://169.254.169.254/latest/meta-data/label.{fmt}", fmt: ""}
        answer: dict[str, Any] = {
            "label_id": label_id,
            "status": "completed",
            "shipment_id": "se-41783999",
            "ship_date": "2026-12-07T00:00:00Z",
            "created_at": "2026-12-07T06:00:00.000Z",
            "shipment_cost": {"currency": "usd", "amount": 9.37},
            "insurance_cost": {"currency": "usd", "amount": 0.0},
            "tracking_number": tracking,
            "is_return_label": False,
            "carrier_id": body["shipment"].get("carrier_id", "se-123890"),
            "service_code": body["shipment"]["service_code"],
            "carrier_code": "ups",
            "label_format": fmt,
            "label_layout": body.get("label_layout", "4x6"),
            "label_download": downloads,
        }
        if mode == "missing_tracking":
            del answer["tracking_number"]
        with self.lock:
            self.labels[label_id] = {"format": fmt, "request": body}
        self._send(handler, 200, json.dumps(answer).encode())

    def _void(self, handler: BaseHTTPRequestHandler, label_id: str, raw: bytes) -> None:
        if raw:
            self._problem("PUT .../void with a body (the documented call has none)")
        with self.lock:
            known = label_id in self.labels
            again = label_id in self.voided
            self.voided.add(label_id)
        if not known:
            self._error(handler, 404, "not_found", f"Label {label_id} was not found")
        elif again:
            answer = {
                "approved": False,
                "message": "Label already voided",
                "reason_code": "label_already_voided",
            }
            self._send(handler, 200, json.dumps(answer).encode())
        else:
            answer = {
                "approved": True,
                "message": "Request for refund submitted.",
                "voided_label_ids": [label_id],
            }
            self._send(handler, 200, json.dumps(answer).encode())

    def _download(self, handler: BaseHTTPRequestHandler, path: str, mode: str) -> None:
        kind = path.rsplit(".", 1)[-1]
        if mode == "bad_label" or kind not in _LABELS:
            self._send(handler, 200, b"<html>Access denied</html>", "text/html")
            return
        self._send(handler, 200, _LABELS[kind], "application/octet-stream")

    # -- plumbing --------------------------------------------------------------------------------

    def _problem(self, problem: str) -> None:
        with self.lock:
            self.problems.append(problem)

    def _error(self, handler: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
        error = {
            "error_source": "shipengine",
            "error_type": "validation",
            "error_code": code,
            "message": message,
        }
        self._send(handler, status, json.dumps({"request_id": "aa3d8e8e", "errors": [error]}).encode())

    def _send(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        content_type: str = "application/json",
    ) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _endless(self, handler: BaseHTTPRequestHandler) -> None:
        """A 200 whose body never ends: a byte, then another, until the client gives up."""
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        try:
            handler.wfile.write(b"1\r\n{\r\n")
            while not self.release.wait(0.05):
                handler.wfile.write(b"1\r\n \r\n")
                handler.wfile.flush()
        except OSError:
            return


@pytest.fixture
def shipstation_server() -> Iterator[ShipStationServer]:
    server = ShipStationServer()
    try:
        yield server
    finally:
        server.close()
