"""A fake Adyen for tests: Checkout API payments and modifications, the report download folder,
and signed standard notifications, over real HTTP on 127.0.0.1.

    with running_fake_adyen() as fake:
        connector = AdyenConnector("adyen", **fake.connector_options())
        connector.authorize(...)
        assert len(fake.payment_requests) == 1

Shapes follow Adyen's documentation: `/payments` answers `{"pspReference", "resultCode", "amount",
"merchantReference", ...}`; modifications answer `{"status": "received", ...}`; errors are
`{"status", "errorCode", "message", "errorType"}`. The error codes used are Adyen's documented ones
(000 unauthorised, 010 not allowed, 100 no amount, 130 no reference, 167 original pspReference
required, 704 request in progress, 803 payment details not found, 901 invalid merchant account).

The outcome of a payment is chosen by the storedPaymentMethodId (the part of PGI's `fromAccount`
after the last colon):

| storedPaymentMethodId | answer |
|---|---|
| `REFUSED_<n>` | `Refused` with refusalReasonCode n (2, 5, 6, 12, 20, ...) |
| `PENDING...` / `RECEIVED...` | `Pending` / `Received` |
| `REDIRECT...`, `CHALLENGE...`, `IDENTIFY...` | `RedirectShopper`, `ChallengeShopper`, `IdentifyShopper` |
| `CANCELLED...` | `Cancelled` |
| `ERROR...` | `Error` |
| `UNKNOWN...` | 422, errorCode 803 (no such stored payment method) |
| anything else | `Authorised` |

Controls: `fail_next(count, status)` answers the next requests with an error before processing
them; `delay_next(seconds, count)` processes the next requests and answers late (a read timeout for
a client); `drop_next(count)` processes them and closes the connection without an answer.
`closed_port_url()` gives a URL nobody listens on. Requests carrying an Idempotency-Key that was
seen before get the stored first answer, as Adyen does; one that is still being processed gets 422
with errorCode 704.
"""

import base64
import binascii
import copy
import csv
import datetime
import hashlib
import hmac
import io
import json
import re
import secrets
import socket
import string
import threading
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

CHECKOUT_VERSION = "v72"  # the Checkout API version that Adyen SDK 16.0.0 calls
DEFAULT_API_KEY = "AQE_fake_api_key"
DEFAULT_MERCHANT_ACCOUNT = "PGI_TEST"
# The example key of Adyen's HMAC documentation: 32 bytes, written in hex.
DEFAULT_HMAC_KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
DEFAULT_REPORT_USERNAME = "report@Company.PGI"
DEFAULT_REPORT_PASSWORD = "report-password"

REFUSAL_TEXTS = {
    "2": "Refused",
    "3": "Referral",
    "4": "Acquirer Error",
    "5": "Blocked Card",
    "6": "Expired Card",
    "7": "Invalid Amount",
    "8": "Invalid Card Number",
    "9": "Issuer Unavailable",
    "11": "3D Not Authenticated",
    "12": "Not enough balance",
    "14": "Acquirer Fraud",
    "20": "FRAUD",
    "22": "FRAUD-CANCELLED",
    "24": "CVC Declined",
    "26": "Revocation Of Auth",
    "28": "Withdrawal amount exceeded",
    "31": "Issuer Suspected Fraud",
    "38": "Authentication required",
}

# The standard columns of the Payments Accounting Report, in Adyen's order.
REPORT_COLUMNS = [
    "Company Account",
    "Merchant Account",
    "Psp Reference",
    "Merchant Reference",
    "Payment Method",
    "Booking Date",
    "TimeZone",
    "Main Currency",
    "Main Amount",
    "Record Type",
    "Payment Currency",
    "Received (PC)",
    "Authorised (PC)",
    "Captured (PC)",
    "Settlement Currency",
    "Payable (SC)",
    "Commission (SC)",
    "Markup (SC)",
    "Scheme Fees (SC)",
    "Interchange (SC)",
    "Processing Fee Currency",
    "Processing Fee (FC)",
    "User Name",
    "Payment Method Variant",
    "Modification Merchant Reference",
]

MODIFICATION_PATH = re.compile(rf"^/{CHECKOUT_VERSION}/payments/(?P<psp>[^/]+)/(?P<kind>captures|cancels|refunds)$")
REPORT_PATH = re.compile(r"^/reports/download/MerchantAccount/(?P<merchant>[^/]+)/(?P<file>[^/]+)$")


def adyen_error(status: int, error_code: str, message: str, error_type: str) -> dict:
    """Adyen's error body."""
    return {"status": status, "errorCode": error_code, "message": message, "errorType": error_type}


DEFAULT_FAILURES = {
    401: adyen_error(401, "000", "HTTP Status Response - Unauthorized", "security"),
    403: adyen_error(403, "010", "Not allowed", "security"),
    429: adyen_error(429, "000", "Too Many Requests", "internal"),
    500: adyen_error(500, "000", "An internal error occurred", "internal"),
    502: adyen_error(502, "000", "Bad Gateway", "internal"),
    503: adyen_error(503, "000", "Service Unavailable", "internal"),
    504: adyen_error(504, "000", "Gateway Timeout", "internal"),
}


def new_psp_reference() -> str:
    """16 characters, upper-case letters and digits, like Adyen's."""
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(16))


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakePayment:
    psp_reference: str
    reference: str
    value: int
    currency: str
    result_code: str
    request: dict
    captures: list[dict] = field(default_factory=list)
    cancels: list[dict] = field(default_factory=list)
    refunds: list[dict] = field(default_factory=list)


class FakeAdyen:
    """The fake's state and controls. Thread-safe: the server answers on several threads."""

    def __init__(
        self,
        *,
        url: str,
        api_key: str,
        merchant_account: str,
        hmac_key: str,
        report_username: str,
        report_password: str,
    ):
        self.url = url
        self.api_key = api_key
        self.merchant_account = merchant_account
        self.hmac_key = hmac_key
        self.report_username = report_username
        self.report_password = report_password
        self.requests: list[RecordedRequest] = []
        self.payments: dict[str, FakePayment] = {}  # by pspReference
        self.payment_requests: list[dict] = []  # /payments bodies that were processed (replays excluded)
        self.reports: dict[str, bytes] = {}  # file name -> content
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._answers: dict[str, tuple[int, dict]] = {}  # Idempotency-Key -> first answer
        self._in_flight: set[str] = set()
        self._failures: deque[tuple[int, dict | str]] = deque()
        self._delays: deque[float] = deque()
        self._drops = 0
        self._reshapes: deque[Callable[[Any], Any]] = deque()

    # --- what a test points the connector at --------------------------------------------------

    @property
    def checkout_url(self) -> str:
        return self.url

    @property
    def report_url(self) -> str:
        return f"{self.url}/reports/download/MerchantAccount/{self.merchant_account}"

    def connector_options(self, **overrides: Any) -> dict:
        """Options for AdyenConnector (or a PGI_GATEWAYS entry) that talk to this fake."""
        options = {
            "api_key": self.api_key,
            "merchant_account": self.merchant_account,
            "hmac_key": self.hmac_key,
            "environment": "test",
            "checkout_url": self.checkout_url,
            "report_url": self.report_url,
            "report_username": self.report_username,
            "report_password": self.report_password,
            "timeout": 5.0,
            "connect_timeout": 2.0,
        }
        options.update(overrides)
        return options

    # --- controls -----------------------------------------------------------------------------

    def fail_next(self, count: int = 1, status: int = 503, body: dict | str | None = None) -> None:
        """Answer the next `count` requests with `status` (Adyen's error body unless given), before
        processing them."""
        with self.lock:
            for _ in range(count):
                self._failures.append((status, body if body is not None else DEFAULT_FAILURES.get(status, {})))

    def reshape_next(self, reshape: Callable[[Any], Any], count: int = 1) -> None:
        """Process the next `count` Checkout requests, then answer 200 with `reshape(answer)` as
        the body: answers of a shape Adyen does not document (a field missing or of another type)."""
        with self.lock:
            self._reshapes.extend([reshape] * count)

    def take_reshape(self) -> Callable[[Any], Any] | None:
        with self.lock:
            return self._reshapes.popleft() if self._reshapes else None

    def delay_next(self, seconds: float, count: int = 1) -> None:
        """Process the next `count` requests, then wait `seconds` before answering."""
        with self.lock:
            self._delays.extend([seconds] * count)

    def drop_next(self, count: int = 1) -> None:
        """Process the next `count` requests, then close the connection without answering."""
        with self.lock:
            self._drops += count

    def add_report(self, day: datetime.date, rows: list[dict]) -> str:
        """Publish the Payments Accounting Report of `day` with these rows (missing columns are
        empty); returns its file name."""
        name = f"payments_accounting_report_{day:%Y_%m_%d}.csv"
        self.reports[name] = report_csv(rows).encode()
        return name

    # --- inspection ---------------------------------------------------------------------------

    def requests_to(self, path_suffix: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith(path_suffix)]

    # --- what Adyen does ----------------------------------------------------------------------

    def take_failure(self) -> tuple[int, dict | str] | None:
        with self.lock:
            return self._failures.popleft() if self._failures else None

    def take_delay(self) -> float:
        with self.lock:
            return self._delays.popleft() if self._delays else 0.0

    def take_drop(self) -> bool:
        with self.lock:
            if self._drops:
                self._drops -= 1
                return True
            return False

    def checkout(self, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict]:
        if headers.get("x-api-key") != self.api_key:
            return 401, DEFAULT_FAILURES[401]
        if not isinstance(body, dict):
            return 400, adyen_error(400, "702", "Structure of the request is invalid", "validation")
        if body.get("merchantAccount") != self.merchant_account:
            return 403, adyen_error(403, "901", "Invalid Merchant Account", "security")
        key = headers.get("idempotency-key")
        if key:
            with self.lock:
                if key in self._answers:
                    return self._answers[key]
                if key in self._in_flight:
                    return 422, adyen_error(422, "704", "request already processed or in progress", "validation")
                self._in_flight.add(key)
        try:
            answer = self._route(path, body)
        finally:
            if key:
                with self.lock:
                    self._in_flight.discard(key)
        if key:
            with self.lock:
                self._answers.setdefault(key, answer)
        return answer

    def _route(self, path: str, body: dict) -> tuple[int, dict]:
        if path == f"/{CHECKOUT_VERSION}/payments":
            return self._payment(body)
        match = MODIFICATION_PATH.match(path)
        if match:
            return self._modification(match["psp"], match["kind"], body)
        return 404, adyen_error(404, "000", f"No endpoint {path}", "validation")

    def _payment(self, body: dict) -> tuple[int, dict]:
        amount = body.get("amount")
        if not isinstance(amount, dict) or not isinstance(amount.get("value"), int) or not amount.get("currency"):
            return 422, adyen_error(422, "100", "There is no amount specified", "validation")
        if not body.get("reference"):
            return 422, adyen_error(422, "130", "Required field 'reference' is not provided.", "validation")
        method = body.get("paymentMethod") or {}
        stored_id = str(method.get("storedPaymentMethodId", ""))
        if not stored_id or not body.get("shopperReference") or stored_id.startswith("UNKNOWN"):
            return 422, adyen_error(422, "803", "PaymentDetail not found", "validation")
        with self.lock:
            self.payment_requests.append(copy.deepcopy(body))
        psp = new_psp_reference()
        answer: dict[str, Any] = {
            "pspReference": psp,
            "merchantReference": body["reference"],
            "amount": dict(amount),
            "paymentMethod": {"type": "scheme", "brand": "visa"},
        }
        if stored_id.startswith("REFUSED_"):
            code = stored_id.removeprefix("REFUSED_")
            answer.update(resultCode="Refused", refusalReasonCode=code)
            answer["refusalReason"] = REFUSAL_TEXTS.get(code, "Refused")
        elif stored_id.startswith("PENDING"):
            answer["resultCode"] = "Pending"
        elif stored_id.startswith("RECEIVED"):
            answer["resultCode"] = "Received"
        elif stored_id.startswith(("REDIRECT", "CHALLENGE", "IDENTIFY")):
            result_code, action = {
                "REDIRECT": ("RedirectShopper", {"type": "redirect", "method": "GET", "url": f"{self.url}/3ds"}),
                "CHALLENGE": ("ChallengeShopper", {"type": "threeDS2", "subtype": "challenge", "token": "tok"}),
                "IDENTIFY": ("IdentifyShopper", {"type": "threeDS2", "subtype": "fingerprint", "token": "tok"}),
            }[re.match(r"[A-Z]+", stored_id)[0]]
            action["paymentMethodType"] = "scheme"
            answer.update(resultCode=result_code, action=action)
        elif stored_id.startswith("CANCELLED"):
            answer["resultCode"] = "Cancelled"
        elif stored_id.startswith("ERROR"):
            answer.update(resultCode="Error", refusalReason="Acquirer Error")
        else:
            answer["resultCode"] = "Authorised"
            answer["additionalData"] = {"authCode": "064145", "cardSummary": "1111"}
        with self.lock:
            self.payments[psp] = FakePayment(
                psp_reference=psp,
                reference=body["reference"],
                value=amount["value"],
                currency=amount["currency"],
                result_code=answer["resultCode"],
                request=copy.deepcopy(body),
            )
        return 200, answer

    def _modification(self, psp: str, kind: str, body: dict) -> tuple[int, dict]:
        with self.lock:
            payment = self.payments.get(psp)
        if payment is None:
            return 422, adyen_error(422, "167", "Original pspReference required for this operation", "validation")
        amount = body.get("amount")
        if kind != "cancels" and (not isinstance(amount, dict) or not isinstance(amount.get("value"), int)):
            return 422, adyen_error(422, "100", "There is no amount specified", "validation")
        answer: dict[str, Any] = {
            "merchantAccount": self.merchant_account,
            "paymentPspReference": psp,
            "pspReference": new_psp_reference(),
            "reference": body.get("reference", ""),
            "status": "received",
        }
        if kind != "cancels":
            answer["amount"] = dict(amount)
        with self.lock:
            getattr(payment, kind).append(copy.deepcopy(body))
        return 201, answer

    def report(self, merchant: str, name: str, authorization: str) -> tuple[int, bytes, str]:
        expected = basic_auth_header(self.report_username, self.report_password)
        if not hmac.compare_digest(authorization.encode(), expected.encode()):
            return 401, b"Unauthorized", "text/plain"
        if merchant != self.merchant_account or name not in self.reports:
            return 404, b"Not Found", "text/plain"
        return 200, self.reports[name], "text/csv"


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw.decode(errors="replace")

    def _handle(self, method: str) -> None:
        fake = self.server.fake
        headers = {key.lower(): value for key, value in self.headers.items()}
        body = self._read_body() if method == "POST" else None
        with fake.lock:
            fake.requests.append(RecordedRequest(method, self.path, headers, copy.deepcopy(body)))
        failure = fake.take_failure()
        if failure is not None:
            status, payload = failure
            self._send(status, payload)
            return
        report = REPORT_PATH.match(self.path)
        if method == "GET" and report:
            authorization = headers.get("authorization", "")
            status, content, content_type = fake.report(report["merchant"], report["file"], authorization)
            self._finish(status, content, content_type, {})
            return
        if method != "POST":
            self._send(404, adyen_error(404, "000", "Not found", "validation"))
            return
        status, answer = fake.checkout(self.path, headers, body)
        reshape = fake.take_reshape()
        if reshape is not None:
            status, answer = 200, reshape(copy.deepcopy(answer))
        extra = {}
        if headers.get("idempotency-key"):
            extra["Idempotency-Key"] = headers["idempotency-key"]
        if isinstance(answer, dict) and answer.get("pspReference"):
            extra["pspReference"] = answer["pspReference"]
        self._send(status, answer, extra)

    def _send(self, status: int, payload: dict | str, extra: dict | None = None) -> None:
        if isinstance(payload, str):
            self._finish(status, payload.encode(), "text/plain", extra or {})
        else:
            self._finish(status, json.dumps(payload).encode(), "application/json;charset=UTF-8", extra or {})

    def _finish(self, status: int, content: bytes, content_type: str, extra: dict) -> None:
        fake = self.server.fake
        delay = fake.take_delay()
        if delay:
            fake.stopping.wait(delay)
        if fake.take_drop():
            self.close_connection = True
            return
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(content)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(content)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a read timeout in a test)

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        self._handle("POST")

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self._handle("GET")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeAdyen

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away mid-answer is expected in timeout tests


@contextmanager
def running_fake_adyen(
    *,
    api_key: str = DEFAULT_API_KEY,
    merchant_account: str = DEFAULT_MERCHANT_ACCOUNT,
    hmac_key: str = DEFAULT_HMAC_KEY,
    report_username: str = DEFAULT_REPORT_USERNAME,
    report_password: str = DEFAULT_REPORT_PASSWORD,
) -> Iterator[FakeAdyen]:
    """Start the fake on 127.0.0.1 on a free port, in a background thread; stop it on exit."""
    server = _Server(("127.0.0.1", 0), _Handler)
    host, port = server.server_address[:2]
    fake = FakeAdyen(
        url=f"http://{host}:{port}",
        api_key=api_key,
        merchant_account=merchant_account,
        hmac_key=hmac_key,
        report_username=report_username,
        report_password=report_password,
    )
    server.fake = fake
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def basic_auth_header(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


# --- notifications ------------------------------------------------------------------------------


def notification_item(
    *,
    event_code: str,
    psp_reference: str,
    merchant_reference: str,
    value: int,
    currency: str,
    success: bool = True,
    original_reference: str = "",
    reason: str = "",
    merchant_account: str = DEFAULT_MERCHANT_ACCOUNT,
    additional_data: dict | None = None,
    event_date: str = "2026-01-15T10:42:40+01:00",
) -> dict:
    """One NotificationRequestItem as Adyen sends it (unsigned; see sign_item)."""
    item = {
        "additionalData": dict(additional_data or {}),
        "amount": {"currency": currency, "value": value},
        "eventCode": event_code,
        "eventDate": event_date,
        "merchantAccountCode": merchant_account,
        "merchantReference": merchant_reference,
        "paymentMethod": "visa",
        "pspReference": psp_reference,
        "reason": reason,
        "success": "true" if success else "false",
    }
    if original_reference:
        item["originalReference"] = original_reference
    return item


def item_signature(item: dict, hmac_key: str) -> str:
    """Adyen's HMAC of a notification item, written independently of the SDK: HMAC-SHA256, keyed
    with the hex-decoded key, of pspReference:originalReference:merchantAccountCode:
    merchantReference:value:currency:eventCode:success, in base64."""
    fields = [
        item.get("pspReference", ""),
        item.get("originalReference", ""),
        item.get("merchantAccountCode", ""),
        item.get("merchantReference", ""),
        str(item["amount"]["value"]),
        item["amount"]["currency"],
        item.get("eventCode", ""),
        item.get("success", ""),
    ]
    digest = hmac.new(binascii.a2b_hex(hmac_key), ":".join(fields).encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def sign_item(item: dict, hmac_key: str = DEFAULT_HMAC_KEY) -> dict:
    signed = copy.deepcopy(item)
    signed.setdefault("additionalData", {})["hmacSignature"] = item_signature(item, hmac_key)
    return signed


def notification_body(items: list[dict], *, hmac_key: str | None = DEFAULT_HMAC_KEY, live: bool = False) -> bytes:
    """The JSON body of one delivery; each item signed with `hmac_key` (None: left as given)."""
    entries = [{"NotificationRequestItem": sign_item(item, hmac_key) if hmac_key else item} for item in items]
    return json.dumps({"live": "true" if live else "false", "notificationItems": entries}).encode()


# --- reports ------------------------------------------------------------------------------------


def report_csv(rows: list[dict]) -> str:
    """A Payments Accounting Report with the standard columns (and any other a row names); missing
    cells are empty."""
    columns = list(REPORT_COLUMNS)
    for row in rows:
        columns += [name for name in row if name not in columns]  # additional columns, as configured
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
