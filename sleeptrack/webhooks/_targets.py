"""Which callback URLs the server may call: no private, loopback or link-local targets by default.

A callback URL is given by API callers, so without a check the server could be made to POST to
addresses only it can reach (its own admin ports, cloud metadata at 169.254.169.254, the database…).
Two checks, both refusing every address that is not globally routable unless the operator allows it
(``SLEEPTRACK_ALLOW_PRIVATE_CALLBACKS=1``, as the tests and the demo do for their loopback receivers):

* when a URL is accepted (:func:`callback_url_problem`): the scheme, the length, IP literals in every form
  the system resolver accepts (``127.1``, ``2130706433``, ``0x7f.0.0.1``, ``[::ffff:127.0.0.1]``) and
  ``localhost`` names. Host names are not resolved there (a request must not wait for DNS);
* before each delivery (:func:`delivery_problem`): the host name is resolved and every address it
  resolves to must be allowed, so a public-looking name pointing at a private address is refused too.

Only the standard library is used here.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from contextvars import ContextVar
from urllib.parse import urlsplit

__all__ = [
    "ALLOW_PRIVATE_ENV",
    "MAX_CALLBACK_URL_LENGTH",
    "address_problem",
    "callback_url_problem",
    "delivery_problem",
    "private_callbacks_allowed",
    "request_policy",
    "set_private_callbacks_allowed",
]

ALLOW_PRIVATE_ENV = "SLEEPTRACK_ALLOW_PRIVATE_CALLBACKS"
MAX_CALLBACK_URL_LENGTH = 2048

_TRUE = {"1", "true", "yes", "on"}
#: The process-wide policy; ``None``: read ``SLEEPTRACK_ALLOW_PRIVATE_CALLBACKS`` at each check.
_policy: bool | None = None
#: The policy of the app serving the current request (set by the server's middleware from its settings).
request_policy: ContextVar[bool | None] = ContextVar("sleeptrack_private_callbacks", default=None)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def private_callbacks_allowed() -> bool:
    """The policy in force: the serving app's settings, else the process-wide one, else the environment."""
    current = request_policy.get()
    if current is not None:
        return current
    if _policy is not None:
        return _policy
    return os.environ.get(ALLOW_PRIVATE_ENV, "").strip().lower() in _TRUE


def set_private_callbacks_allowed(allowed: bool | None) -> None:
    """Set the process-wide policy (``create_app`` does, from ``Settings.allow_private_callbacks``)."""
    global _policy
    _policy = allowed


def address_problem(ip: IPAddress) -> str | None:
    """Why ``ip`` may not be called (loopback, private, link-local, …), or None for a public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            return address_problem(mapped)
    for attribute, what in (
        ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address"),
        ("is_unspecified", "an unspecified address"),
        ("is_multicast", "a multicast address"),
        ("is_private", "a private address"),
        ("is_reserved", "a reserved address"),
    ):
        if getattr(ip, attribute):
            return f"{ip} is {what}"
    if not ip.is_global:
        return f"{ip} is not a public address"
    return None


def _literal_ip(host: str) -> IPAddress | None:
    """The address if ``host`` is an IP literal in any form the resolver would accept, else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    try:  # inet_aton takes the old shorthand forms: 127.1, 2130706433, 0x7f.0.0.1, 0177.0.0.1
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def callback_url_problem(url: str, allow_private: bool | None = None) -> str | None:
    """Why ``url`` is not an acceptable callback URL, or None. ``allow_private``: default the policy."""
    if allow_private is None:
        allow_private = private_callbacks_allowed()
    if not url or len(url) > MAX_CALLBACK_URL_LENGTH:
        return f"a callback URL has 1 to {MAX_CALLBACK_URL_LENGTH} characters"
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        return "a callback URL has no spaces or control characters"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises ValueError for a port out of range
    except ValueError as exc:
        return f"not a URL: {exc}"
    if parts.scheme not in ("http", "https"):
        return "a callback URL is http:// or https://"
    if not host:
        return "a callback URL names a host"
    if parts.username is not None or parts.password is not None:
        return "a callback URL carries no user name or password"
    if allow_private:
        return None
    name = host.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return f"{host} is this machine (set {ALLOW_PRIVATE_ENV}=1 to allow private callbacks)"
    ip = _literal_ip(host)
    if ip is not None:
        problem = address_problem(ip)
        if problem is not None:
            return f"{problem} (set {ALLOW_PRIVATE_ENV}=1 to allow private callbacks)"
    return None


def delivery_problem(url: str, allow_private: bool | None = None) -> str | None:
    """Why the server must not POST to ``url`` now (checked before each delivery), or None.

    Resolves the host: every address it resolves to must be public (unless private ones are allowed).
    """
    if allow_private is None:
        allow_private = private_callbacks_allowed()
    problem = callback_url_problem(url, allow_private)
    if problem is not None or allow_private:
        return problem
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        return f"cannot resolve {host}: {exc}"
    for info in infos:
        try:
            ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        except ValueError:
            return f"{host} resolves to an unusable address {info[4][0]!r}"
        why = address_problem(ip)
        if why is not None:
            return f"{host} resolves to {why} (set {ALLOW_PRIVATE_ENV}=1 to allow private callbacks)"
    return None
