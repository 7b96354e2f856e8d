"""Where a webhook may be sent: public addresses only, checked when it is created and
again before every send, with the connection pinned to the address that was checked.

A webhook URL is chosen by whoever creates it, and the server POSTs to it from inside the
network: without these rules it is a request forgery tool (cloud metadata at
169.254.169.254, the database on 127.0.0.1:5432, a port scan read back from the delivery
log). The host is resolved with the system resolver, which also reads every numeric
spelling (``2130706433``, ``0177.0.0.1``, ``[::ffff:127.0.0.1]``), and every address it
yields must be public. The sender then connects to that checked address itself, sending
the original ``Host`` header and TLS server name, so a DNS answer that changes between
the check and the connection (rebinding) reaches nothing new.

Names listed in ``LORAREG_WEBHOOK_ALLOW_HOSTS`` (exactly as written in the URL) skip the
address rules: an operator's way to reach an internal receiver on purpose.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Collection
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from registry.errors import InvalidInput, WebhookTargetRefused

MAX_URL_CHARS = 2048
# Cloud metadata services by name (their addresses are link-local or private anyway, but
# these names should be refused even where they do not resolve).
METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.com",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
# Prefixes whose addresses embed an IPv4 address the packet may end up at.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

Resolver = Callable[[str, int], list[str]]
"""``resolve(host, port) -> addresses``; raises OSError when the name does not resolve."""


@dataclass(frozen=True)
class WebhookTarget:
    """A checked destination: connect to ``address``, present ``host`` as Host and SNI."""

    url: str
    scheme: str
    host: str
    port: int
    address: str

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"

    def pinned_url(self) -> str:
        """The URL with its host replaced by the checked address (userinfo and path kept)."""
        parts = urlsplit(self.url)
        userinfo = parts.netloc.rpartition("@")[0]
        ip = f"[{self.address}]" if ":" in self.address else self.address
        netloc = f"{userinfo}@{ip}:{self.port}" if userinfo else f"{ip}:{self.port}"
        return parts._replace(netloc=netloc).geturl()


def check_url_syntax(url: str) -> SplitResult:
    """An absolute http(s) URL of bounded length with a host and a valid port."""
    if (
        not isinstance(url, str)
        or len(url) > MAX_URL_CHARS
        or any(ord(c) < 33 or ord(c) == 127 for c in url)
    ):
        raise InvalidInput(
            f"webhook URL must be an http:// or https:// URL of at most {MAX_URL_CHARS}"
            " characters, without spaces or control characters"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("webhook URL must be an http:// or https:// URL with a host")
    try:
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        raise InvalidInput("webhook URL has an invalid port") from None
    return parts


def host_of(url: str) -> str:
    """The host part only: what events and listings show instead of the whole URL."""
    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def resolve_target(
    url: str,
    *,
    allow_hosts: Collection[str] = (),
    resolve: Resolver = system_resolver,
) -> WebhookTarget:
    """Check ``url`` and resolve its host to one address that may be connected to.

    Raises InvalidInput for a malformed URL and WebhookTargetRefused for a host that is,
    or resolves to, a loopback, private, link-local, unique-local, multicast, reserved,
    unspecified or metadata address, or that does not resolve. The message names the host
    and the rule, never the addresses found (a name's internal address is not the
    caller's business).
    """
    parts = check_url_syntax(url)
    host = (parts.hostname or "").lower().rstrip(".")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    allowed = host in {h.lower().rstrip(".") for h in allow_hosts}
    if host in METADATA_HOSTS and not allowed:
        raise WebhookTargetRefused(
            f"webhook host {host!r} is a cloud metadata service; webhooks go to public addresses"
        )
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError):
        addresses = []
    if not addresses:
        raise WebhookTargetRefused(
            f"webhook host {host!r} does not resolve; check the URL (webhooks go to public"
            " addresses)"
        )
    if not allowed:
        for raw in addresses:
            if not is_public(raw):
                raise WebhookTargetRefused(
                    f"webhook host {host!r} is or resolves to an internal address (loopback,"
                    " private, link-local or metadata); webhooks go to public addresses, or"
                    " an operator names the host in LORAREG_WEBHOOK_ALLOW_HOSTS"
                )
    return WebhookTarget(url=url, scheme=parts.scheme, host=host, port=port, address=addresses[0])


def is_public(raw: str) -> bool:
    """True only for a globally routable unicast address, whatever embeds it."""
    try:
        ip = ipaddress.ip_address(raw.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip.teredo is not None:
            embedded = ip.teredo[1]
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and not is_public(str(embedded)):
            return False
    return bool(
        ip.is_global
        and not ip.is_multicast
        and not ip.is_reserved
        and not ip.is_loopback
        and not ip.is_link_local
        and not ip.is_private
        and not ip.is_unspecified
    )
