"""Checking the URLs users give (`--url`, `--litellm-url`, `top --url NAME=URL`) before anything is sent.

A URL igwlab cannot use is refused up front with exit 2 and the reason (RFC 3986 as Python's
urllib and httpx read it): http or https, a host, a port from 1 to 65535 when one is given, a
well-formed IPv6 literal in brackets, no spaces or control characters, no query or fragment, and no
trailing `/v1` (igwlab appends API paths such as `/v1/completions` to it; an OpenAI-style base URL
ending in /v1 would send to /v1/v1/...).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit, urlunsplit

from igwlab.errors import UsageError

EXAMPLE = "http://127.0.0.1:8080"


def check_url(value: str, flag: str = "--url") -> str:
    """`value` without a trailing slash, or UsageError naming `flag` and what is wrong with it."""

    def refuse(problem: str, fix: str = f"use a form like {EXAMPLE}") -> UsageError:
        return UsageError(f"{flag} {value!r} {problem}", fix=fix)

    text = value.strip()
    if not text:
        raise refuse("is empty")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise refuse("contains spaces or control characters")
    try:
        parts = urlsplit(text)
    except ValueError as error:  # "Invalid IPv6 URL" and the like
        raise refuse(f"is not a valid URL ({error})") from None
    if parts.scheme not in ("http", "https"):
        fix = f"add the scheme: http://{text}" if "://" not in text else f"use a form like {EXAMPLE}"
        raise refuse("is not an http(s) URL", fix)
    host = parts.hostname
    if not host:
        raise refuse("has no host")
    try:
        port = parts.port
    except ValueError:
        raise refuse("has a port that is not a number from 1 to 65535") from None
    if port == 0:
        raise refuse("has port 0, which nothing listens on")
    if parts.query or parts.fragment:
        raise refuse("has a query or fragment", "give the base URL only; igwlab appends paths like /v1/completions")
    if parts.path.rstrip("/").lower().endswith("/v1"):
        base = urlunsplit(parts._replace(path=parts.path.rstrip("/")[:-3]))
        raise refuse(
            "ends in /v1, but igwlab appends /v1/completions and /v1/models itself (it would send to /v1/v1/...)",
            f"give the base URL without the trailing /v1: {base}",
        )
    if "[" in parts.netloc:
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise refuse(f"has a malformed IPv6 address [{host}]") from None
    else:
        try:
            host.encode("idna")
        except UnicodeError:
            raise refuse(f"has a host name that cannot be encoded for DNS ({host!r})") from None
    try:
        import httpx

        httpx.URL(text)
    except Exception as error:  # httpx's own checks; whatever it refuses, we refuse first
        raise refuse(f"is not a URL httpx can use ({error})") from None
    return text.rstrip("/")


_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@?#]*@")


def redact_userinfo(text: str) -> str:
    """`text` with the user and password of every URL in it replaced by `***`:
    `http://user:pw@gw:80/x` becomes `http://***@gw:80/x`. igwlab sends the credentials a URL carries but
    never prints them (messages, tables, JSON, crash files)."""
    return _USERINFO.sub(r"\1***@", text)


_UNRESOLVED = (
    "Name or service not known",
    "nodename nor servname",
    "Temporary failure in name resolution",
    "getaddrinfo failed",
    "No address associated with hostname",
)


def unresolved(detail: str) -> bool:
    """An error text (from httpx, aiohttp or the resolver) saying a host name did not resolve."""
    return any(marker in detail for marker in _UNRESOLVED)
