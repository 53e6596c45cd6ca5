"""Where PGI may post a webhook, and the POST itself.

A merchant's URL is checked when it is registered and again on every connection: the name is
resolved and each address must be public (not loopback, private, link-local, shared, reserved,
multicast or unspecified). The check is done in the connection itself (`_new_conn`) and the socket
connects to the address just checked, so a name that resolves to a public address at registration
and to 127.0.0.1 or 169.254.169.254 later (DNS rebinding) is refused, not followed. TLS still
checks the certificate against the host name. No redirect is followed, no proxy from the
environment is used, and at most `response_body_limit` bytes of the answer are read.
"""

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import certifi
from django.conf import settings
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, Timeout
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import HTTPError, NewConnectionError
from urllib3.util import parse_url

from pgi.text import clip


class UnsafeUrl(ValueError):
    """A URL PGI will not post to; the message says why, for the merchant."""


def webhooks_settings() -> dict:
    return settings.PGI_WEBHOOKS


NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def address_is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 scope (fe80::1%eth0) is link-local anyway
    addresses = [ip]
    if ip.version == 6:
        # An IPv6 address that carries an IPv4 one reaches that one: ::ffff:127.0.0.1 (mapped),
        # 2002:a9fe:a9fe:: (6to4), Teredo, and 64:ff9b::a9fe:a9fe (NAT64) all lead to private
        # addresses when what they carry is private. Each carried address must be public too.
        if ip.ipv4_mapped is not None:
            addresses.append(ip.ipv4_mapped)
        if ip.sixtofour is not None:
            addresses.append(ip.sixtofour)
        if ip.teredo is not None:
            addresses.extend(ip.teredo)
        if any(ip in network for network in NAT64):
            addresses.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.ipv4_mapped is not None:  # the mapped address alone decides (::ffff:0:0/96 is "reserved")
            addresses = [ip.ipv4_mapped]
    # is_global is False for private, loopback, link-local, shared (100.64/10), reserved and
    # unspecified addresses and for documentation ranges; multicast can be "global": refused too.
    return all(each.is_global and not each.is_multicast for each in addresses)


def resolve(host: str, port: int, *, allow_private: bool) -> list[tuple]:
    """getaddrinfo's (family, type, proto, _, sockaddr) for host:port, every address checked.
    Raises UnsafeUrl when the name does not resolve or any address is not public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeUrl(f"The host {host} does not resolve.") from exc
    if not infos:
        raise UnsafeUrl(f"The host {host} does not resolve.")
    if not allow_private:
        for info in infos:
            if not address_is_public(info[4][0]):
                raise UnsafeUrl(f"The host {host} resolves to a non-public address ({info[4][0]}).")
    return infos


def url_check(url: str, *, allow_private: bool | None = None) -> None:
    """Raises UnsafeUrl unless PGI may post to `url`: http or https, a host, no user or password,
    and (unless private URLs are allowed) a host that resolves to public addresses only."""
    if allow_private is None:
        allow_private = webhooks_settings()["allow_private_urls"]
    if not url.isprintable() or any(char.isspace() for char in url):
        raise UnsafeUrl("The URL must not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl("Not a valid URL.") from exc
    if port == 0:
        raise UnsafeUrl("Not a valid port.")
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl("Only http and https URLs are accepted.")
    if not parts.hostname:
        raise UnsafeUrl("The URL has no host.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("The URL must not carry a user name or password.")
    if parts.fragment:
        raise UnsafeUrl("The URL must not have a fragment (#…).")
    resolve(parts.hostname, port or (443 if parts.scheme == "https" else 80), allow_private=allow_private)


class _CheckedConnect:
    """Connects only to an address that `resolve` has just checked (see the module's docstring)."""

    allow_private = False

    def _new_conn(self) -> socket.socket:
        try:
            infos = resolve(self._dns_host, self.port, allow_private=self.allow_private)
        except UnsafeUrl as exc:
            raise NewConnectionError(self, str(exc)) from exc
        error: OSError | None = None
        for family, kind, proto, _name, address in infos:
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(self.timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.connect(address)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
        raise NewConnectionError(self, f"Failed to connect: {error}")


class _CheckedHTTPConnection(_CheckedConnect, HTTPConnection):
    pass


class _CheckedHTTPSConnection(_CheckedConnect, HTTPSConnection):
    pass


class _CheckedPool:
    allow_private = False

    def _new_conn(self):
        connection = super()._new_conn()
        connection.allow_private = self.allow_private
        return connection


class _CheckedHTTPPool(_CheckedPool, HTTPConnectionPool):
    ConnectionCls = _CheckedHTTPConnection


class _CheckedHTTPSPool(_CheckedPool, HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


@dataclass(frozen=True)
class PostResult:
    status: int | None  # None: no answer (refused address, connection, timeout)
    body: str  # the start of the answer's body
    error: str  # why there is no answer, or ""
    duration_ms: int

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def post(url: str, *, body: bytes, headers: dict[str, str]) -> PostResult:
    """POST `body` to `url` once; never raises for the network's or the receiver's failures."""
    config = webhooks_settings()
    started = time.monotonic()

    def done(status=None, text="", error="") -> PostResult:
        return PostResult(status, clip(text, config["response_body_limit"]), clip(error, 255),
                          int((time.monotonic() - started) * 1000))

    try:
        url_check(url, allow_private=True)  # the shape; the addresses are checked on connecting
    except UnsafeUrl as exc:
        return done(error=str(exc))
    parsed = parse_url(url)
    timeout = Timeout(connect=config["connect_timeout"], read=config["read_timeout"])
    if parsed.scheme == "https":
        # Certificates checked against the host name, with Mozilla's roots (as requests does): a slim
        # container image may have no system bundle.
        pool = _CheckedHTTPSPool(parsed.host, parsed.port, timeout=timeout, maxsize=1, retries=False,
                                 cert_reqs="CERT_REQUIRED", ca_certs=certifi.where())
    else:
        pool = _CheckedHTTPPool(parsed.host, parsed.port, timeout=timeout, maxsize=1, retries=False)
    pool.allow_private = config["allow_private_urls"]
    try:
        response = pool.urlopen(
            "POST",
            parsed.request_uri,
            body=body,
            headers=headers,
            redirect=False,
            retries=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            raw = response.read(config["response_body_limit"])
        finally:
            response.close()
        return done(response.status, raw.decode("utf-8", "replace"))
    except NewConnectionError as exc:
        reason = str(exc).split(": ", 1)[-1]
        return done(error=reason)
    except HTTPError as exc:
        return done(error=f"{type(exc).__name__}: {exc}")
    except OSError as exc:
        return done(error=f"{type(exc).__name__}: {exc}")
    finally:
        pool.close()
