"""The error tree every Dockside component raises, with messages a person can act on.

    DocksideError                 anything raised on purpose: `code`, `message`, `http_status`
    │
    │ FATAL: sent again unchanged, it fails again; a person must change the request or data
    ├── InputError            422 the request or data is wrong
    │   ├── MalformedJson     400 the body is not JSON at all
    │   ├── NotFound          404 an order, station, template ... that does not exist
    │   ├── Conflict          409 the state forbids it (packed twice, illegal transition)
    │   └── TemplateError     422 a template that cannot compile or render (line, column)
    │       └── TemplateOverrun   past the sandbox's bounds or budget: the version is set aside
    │
    │ RETRYABLE once a person has fixed the device; what to retry is the type's to say
    ├── DeviceError           503 a printer or scale is not doing its job
    │   ├── PrinterError          bytes may have reached the printer: never sent again by itself
    │   │   ├── PrinterUnreachable    nothing sent, the printer may come back: hold the label
    │   │   └── PrinterUnusable       nothing sent; only a configuration change helps (FATAL)
    │   └── ScaleError            no frame in time, a refused command, no weight for this parcel
    │       ├── ScalePortLost         the serial port is gone: open it again, with backoff
    │       ├── ScaleGarbledFrame     not a frame of the protocol: line noise, or wrong settings
    │       └── ScaleWithoutWeight    an answer without a usable weight (overload, fault, unit)
    │           └── ScaleUnsettled    the weight is moving or the scale busy: wait, weigh again
    │
    │ RETRYABLE unless `fatal`: the agent backs off and reconnects on its own
    └── SyncError             503 the link between agent and cloud
        ├── CloudTlsMismatch      one end plain, a wrong CA or name: retried, and a person told
        └── AuthError         401 a bad, expired, replayed or revoked credential (`fatal`: FATAL)

Code that must decide asks the type or an attribute (`PrinterError.nothing_sent` and
`retry_may_help`, `SyncError.fatal`), never the code string: the codes are the wire contract.

Each side adds leaves of its own, where they are raised, under the branch they belong to:

    InputError      cloud: InvalidJson 400, BatchTooComplex 413, BadRelease, ReleaseTooLarge 413,
                    UnsafeWebhookUrl, OrderLocked 409, ParcelAlreadyLabelled 409 and
                    ParcelNotVoidable 409 (Conflict); agent: ConfigError, NotEnrolled 409,
                    NumbersExhausted 409 (Conflict: names its `carrier`), CloudTlsError;
                    dockside.rule_conditions: RuleError; dockside.scanning: ScanUnreadable (a
                    scan that names no order reference); the item check: ItemScanUnreadable (a
                    scan that names no item), WrongItem 409, ExtraUnit 409 and ItemsNotChecked
                    409 (Conflict)
    DocksideError   cloud: Unauthenticated 401, Forbidden 403, TokenRevoked 409, SignInLimited 429
                    (RETRYABLE after its Retry-After), ServerBusy 503 (RETRYABLE), IllegalTransition
                    409, ExceptionClosed 409, MissingSecretKey, SecretKeyMismatch, NoReleaseKey 503,
                    CarrierApiError 502 (CarrierApiRefused; CarrierApiUnavailable RETRYABLE; decide
                    by `retry_may_help` and `may_have_bought`);
                    agent: PairingRefused 403 and PairingThrottled 429, UpdateRefused, StoreError,
                    RendererUnavailable 503 (the carrier-label worker cannot start),
                    PackerNotRecognised 401 and SignInThrottled 429 (a packer's station sign-in),
                    TooManyWaiters 429 (RETRYABLE: too many reads wait for their jobs' printers)

Every error carries a snake_case `code` (the API's `error.code`) and a message that says what
went wrong and what to do. `params` holds the values that message names (order_ref, printer,
grams, limit...), so the station page can say the same in the packer's language from its own
catalog (edge_agent/http/web/static/messages_*.js); the English `message` stays for API users
and logs. The HTTP status of each is its `http_status`, which
`dockside.http_errors` answers with in both apps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "AuthError",
    "CloudTlsMismatch",
    "Conflict",
    "DeviceError",
    "DocksideError",
    "InputError",
    "MalformedJson",
    "NotFound",
    "PrinterError",
    "PrinterUnreachable",
    "PrinterUnusable",
    "ScaleError",
    "ScaleGarbledFrame",
    "ScalePortLost",
    "ScaleUnsettled",
    "ScaleWithoutWeight",
    "SyncError",
    "TemplateError",
    "TemplateOverrun",
]


class DocksideError(Exception):
    """Base of every error Dockside raises on purpose."""

    code = "dockside_error"
    http_status = 500

    def __init__(
        self, message: str, *, code: str | None = None, params: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        # The values the message names, for a page that words it in its own language.
        self.params: dict[str, Any] = dict(params or {})


class InputError(DocksideError):
    """The request or its data is wrong; sending it again unchanged fails again."""

    code = "invalid_input"
    http_status = 422


class MalformedJson(InputError):
    """A request body that is not JSON at all (400, where JSON of the wrong shape is 422)."""

    code = "invalid_json"
    http_status = 400


class NotFound(InputError):
    """The named thing does not exist (or is not visible to the caller)."""

    code = "not_found"
    http_status = 404


class Conflict(InputError):
    """The current state forbids the request."""

    code = "conflict"
    http_status = 409


class TemplateError(InputError):
    """A template that cannot be compiled or rendered; the message names line and column."""

    code = "invalid_template"
    http_status = 422

    def __init__(
        self, message: str, *, code: str | None = None, line: int | None = None, column: int | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.line = line
        self.column = column


class TemplateOverrun(TemplateError):
    """A render that tried more work than a label template may do, whatever the order.

    One operation past its bound (a huge power, product, repetition, width, text or precision) or
    the whole render past its budget of work units or CPU time. The template is at fault, not the
    order: an agent sets the version aside until a new one is published.
    """

    code = "template_over_budget"


class DeviceError(DocksideError):
    """A printer or scale is not doing its job; retry once a person has fixed it."""

    code = "device_error"
    http_status = 503


class PrinterError(DeviceError):
    """A printer is unreachable, refuses the connection or reports a fault.

    Code that must decide what a failed label means asks the type or its two attributes, never
    the code string (the code is the wire contract, set by the driver that raised it):

        PrinterError           bytes may have reached the printer (a send that broke, timed out,
        │                      a garbled status): a person checks; never sent again by itself
        ├── PrinterUnreachable no connection, so no byte went out; the printer may come back
        │                      (switched on, cable plugged in): the label waits for it, held
        └── PrinterUnusable    not configured or not drivable (language, connection kind): no
                               byte went out, and only a change of configuration helps

    `nothing_sent`: no byte of the label reached the printer, so it surely did not print.
    `retry_may_help`: the same label sent again later, unchanged, may print (hold it).
    """

    code = "printer_error"
    nothing_sent = False
    retry_may_help = False


class PrinterUnreachable(PrinterError):
    """The printer could not be connected to (refused, not found, timed out); nothing was sent."""

    code = "printer_unreachable"
    nothing_sent = True
    retry_may_help = True


class PrinterUnusable(PrinterError):
    """The agent cannot drive this printer as configured (none for the role, an unsupported
    language or connection kind); nothing was sent, and only a configuration change helps."""

    code = "printer_not_configured"
    nothing_sent = True


class ScaleError(DeviceError):
    """A scale does not answer, is not stable, is overloaded or sent a garbled frame.

    Code that must decide what to do about a scale asks the type, never the code string (the
    code is the wire contract, set by the driver or reader that raised it):

        ScaleError              no frame in time, a command the scale refused or does not
        │                       have, no weight for this parcel (empty, already used)
        ├── ScalePortLost       the serial port is gone or may not be opened: let go of it and
        │                       open the same path again, with backoff
        ├── ScaleGarbledFrame   bytes that are no frame of the protocol: one among good frames
        │                       is line noise; many in a row mean a wrong protocol or baud rate
        └── ScaleWithoutWeight  the scale answered in its protocol (so it is there and speaks
            │                   it), only without a usable weight: overload, fault, unit
            └── ScaleUnsettled  the weight is moving or the scale is busy: it is fine, wait
    """

    code = "scale_error"


class ScalePortLost(ScaleError):
    """The scale's serial port is gone (unplugged) or this user may not open it; reopen it later."""

    code = "scale_unplugged"


class ScaleGarbledFrame(ScaleError):
    """The scale sent bytes that are not a frame of its protocol."""

    code = "scale_garbled_frame"


class ScaleWithoutWeight(ScaleError):
    """The scale answered in its protocol but with no usable weight (overload, fault, unit...)."""

    code = "scale_no_weight"


class ScaleUnsettled(ScaleWithoutWeight):
    """The scale answered and is fine; only its weight is moving, or it is busy zeroing or taring."""

    code = "scale_unstable"


class SyncError(DocksideError):
    """The link between agent and cloud failed; retryable unless `fatal` is set."""

    code = "sync_error"
    http_status = 503
    fatal = False


class CloudTlsMismatch(SyncError):
    """Agent and cloud disagree about TLS (one end plain, a wrong CA or name): a setting to fix.

    Retried like any link failure, since the cloud may be reconfigured, but worth telling a person.
    """

    code = "cloud_tls"


class AuthError(SyncError):
    """A bad, expired, replayed or revoked token or credential; retrying will not help."""

    code = "unauthenticated"
    http_status = 401
    fatal = True
