"""Which URLs Corral may fetch or post to: server-side request forgery stops here.

A feature that reaches out to a URL a user gave (today: alert webhooks) asks
``UrlPolicy.check`` first, when the URL is saved and again right before each request, so a
name that resolves somewhere else later is caught too. Refused: a scheme not on the list
(``file://``, ``ftp://``, ``gopher://`` …) and a host any of whose addresses is loopback,
link-local (cloud metadata at 169.254.169.254), private, unspecified, multicast or reserved —
also spelt as an IPv4-mapped IPv6 address or as a decimal, octal or hex IPv4 number —
unless the host is allowed by name or the policy allows private addresses.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from corral.errors import InvalidArgument

__all__ = ["UrlPolicy", "UrlRefused"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str], Sequence[str]]

_HOW_TO_ALLOW = (
    "add the host to CORRAL_OUTBOUND_ALLOWED_HOSTS, or set CORRAL_OUTBOUND_ALLOW_PRIVATE=true "
    "to allow every private address"
)


class UrlRefused(InvalidArgument):
    """A URL Corral will not fetch or post to."""

    title = "URL refused"


def _resolve(host: str) -> list[str]:
    """Every address ``host`` resolves to (all families), as text."""
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return sorted({str(info[4][0]).split("%")[0] for info in infos})


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """``host`` read as inet_aton does: ``2130706433``, ``0x7f.1``, ``0177.0.0.1`` …"""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers: list[int] = []
    for part in parts:
        text = part.lower()
        try:
            if text.startswith("0x"):
                numbers.append(int(text[2:] or "0", 16))
            elif len(text) > 1 and text.startswith("0"):
                numbers.append(int(text[1:], 8))
            elif text.isdigit():
                numbers.append(int(text))
            else:
                return None
        except ValueError:
            return None
    # The last part fills every byte the earlier ones left: a.b.c.d, a.b.cd, a.bcd, abcd.
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (4 - len(head)):
        return None
    value = 0
    for n in head:
        value = value << 8 | n
    return ipaddress.IPv4Address(value << 8 * (4 - len(head)) | last)


def literal_address(host: str) -> Address | None:
    """The address ``host`` spells without DNS (any IPv4 or IPv6 form), else None."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return _legacy_ipv4(host)


def forbidden_reason(address: Address) -> str | None:
    """Why posting to ``address`` is refused without configuration, or None if it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            reason = forbidden_reason(mapped)
            return f"{reason} (as IPv6 {address})" if reason else None
        if address.teredo is not None:
            return "a Teredo tunnel address (2001::/32)"
    checks = (
        ("is_unspecified", "unspecified (0.0.0.0 or ::)"),
        ("is_loopback", "loopback (127.0.0.0/8, ::1)"),
        ("is_link_local", "link-local (169.254.0.0/16 with cloud metadata, fe80::/10)"),
        ("is_multicast", "multicast"),
        ("is_reserved", "reserved"),
        ("is_private", "private (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7 …)"),
    )
    for attribute, reason in checks:
        if getattr(address, attribute):
            return reason
    if not address.is_global:
        return "not a public address"
    return None


@dataclass(frozen=True)
class UrlPolicy:
    """The schemes and hosts outbound requests may go to.

    Args:
        schemes: URL schemes allowed.
        allowed_hosts: host names, addresses or networks (``10.1.0.0/16``) allowed even when
            they are private or loopback.
        allow_private: allow every address (for tests and closed networks).
        resolver: host name → addresses; ``socket.getaddrinfo`` by default.
    """

    schemes: tuple[str, ...] = ("https", "http")
    allowed_hosts: tuple[str, ...] = ()
    allow_private: bool = False
    resolver: Resolver = field(default=_resolve, repr=False, compare=False)

    @classmethod
    def from_settings(cls, allow_private: bool, allowed_hosts: Iterable[str]) -> UrlPolicy:
        return cls(allowed_hosts=tuple(allowed_hosts), allow_private=allow_private)

    def check(self, url: str) -> str:
        """``url`` (stripped) if it may be requested; else ``UrlRefused`` naming the rule."""
        text = url.strip() if isinstance(url, str) else ""
        try:
            parts = urlsplit(text)
            host = (parts.hostname or "").rstrip(".")
            parts.port  # noqa: B018 - a malformed port raises here
        except ValueError as exc:
            raise UrlRefused(f"URL {url!r} cannot be parsed: {exc}") from exc
        scheme = parts.scheme.lower()
        if scheme not in self.schemes:
            allowed = ", ".join(f"{s}://" for s in self.schemes)
            raise UrlRefused(
                f"URL {url!r} is refused: scheme {scheme or '(none)'!r} is not allowed "
                f"for outbound requests (allowed: {allowed})"
            )
        if not host or any(c.isspace() for c in text):
            raise UrlRefused(f"URL {url!r} needs a host, e.g. https://hooks.example/x")
        if self.allow_private or self._allowed_name(host):
            return text
        literal = literal_address(host)
        if literal is not None:
            addresses: list[Address] = [literal]
        else:
            try:
                addresses = [ipaddress.ip_address(a) for a in self.resolver(host)]
            except (OSError, UnicodeError, ValueError) as exc:
                raise UrlRefused(
                    f"URL {url!r} is refused: host {host!r} does not resolve ({exc})"
                ) from exc
            if not addresses:
                raise UrlRefused(f"URL {url!r} is refused: host {host!r} has no address")
        for address in addresses:
            reason = forbidden_reason(address)
            if reason is not None and not self._allowed_address(address):
                shown = host if str(address) == host else f"{host} ({address})"
                raise UrlRefused(
                    f"URL {url!r} is refused: host {shown} is {reason}, and outbound requests "
                    f"to non-public addresses are off; {_HOW_TO_ALLOW}"
                )
        return text

    def _allowed_name(self, host: str) -> bool:
        return host.lower() in {h.strip().lower().rstrip(".") for h in self.allowed_hosts}

    def _allowed_address(self, address: Address) -> bool:
        for entry in self.allowed_hosts:
            try:
                network: Network = ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                continue
            if address.version == network.version and address in network:
                return True
        return False
