"""Where the service may connect on a tenant's behalf: the URL and address policy, and a connector that
only ever connects to an address it has vetted.

Used for webhooks (checked by the API at submit and by the worker at every delivery); written to serve
S3 URIs and model-hub fetches too. A tenant names a URL; the service must not become a way into its own
network (an SSRF: cloud metadata, Postgres on 127.0.0.1:5432, anything on 10/8):

- `check_url`: the scheme (https; http only when the policy allows it), no credentials in the URL, and
  the host: a metadata name, or an IP literal (also in odd notations such as ``0x7f000001``,
  ``2130706433``, ``0177.0.0.1`` or ``127.1``, which are refused outright) is refused without a lookup.
- `resolve`: every address the host resolves to (``getaddrinfo``, under a deadline) must be allowed,
  or none is used. `refusal` says why an address is not: loopback, private, link-local, multicast,
  reserved, unspecified, shared (100.64/10), not globally routable, or a cloud metadata address; IPv6
  forms that embed an IPv4 address (IPv4-mapped, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``) are judged
  by that address. The operator's allow-list (`Policy.allowed_networks`) admits internal receivers;
  metadata addresses are refused even then.
- `VettedBackend`: an httpcore network backend whose ``connect_tcp`` resolves and vets as above and then
  connects to a vetted IP (never resolving the name again, so DNS rebinding between the check and the
  connection cannot redirect it), while TLS still verifies the certificate against the URL's hostname.
  Every read, write, TLS handshake and the lookup get at most what is left of one total deadline.

`Refused` (and its subclasses) carry a short `reason` that is safe to show the tenant; the exception's
text is the detail, for the operator log only.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import certifi
import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

NOT_ALLOWED = "address not allowed"
INVALID_URL = "invalid URL"
TIMED_OUT = "timed out"
COULD_NOT_CONNECT = "could not connect"

# Cloud metadata and platform endpoints: refused even when an allowed network contains them.
METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, …
        "169.254.169.253",  # AWS DNS
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.170.23",  # AWS EKS pod identity
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::23",  # AWS EKS pod identity over IPv6
        "168.63.129.16",  # Azure wire server (a public address)
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
    )
)
# Ranges Python's `is_global` does not refuse on every version, refused here explicitly.
NOT_GLOBAL = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "192.0.0.0/24",  # IETF protocol assignments
        "::/96",  # IPv4-compatible (deprecated), :: and ::1 included
        "::ffff:0:0:0/96",  # IPv4-translated
        "64:ff9b:1::/48",  # local-use NAT64
        "2001::/23",  # IETF protocol assignments, Teredo included
        "2001:db8::/32",  # documentation
        "100::/64",  # discard-only
    )
)
SHARED = ipaddress.ip_network("100.64.0.0/10")  # shared address space (carrier-grade NAT)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
# A host made only of numbers (decimal, 0-octal, 0x-hex) in 1 to 4 dotted parts: inet_aton's IPv4 forms.
NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?$", re.IGNORECASE)
DEFAULT_RESOLVE_SECONDS = 5.0


class Refused(Exception):
    """The URL, or an address it resolves to, may not be used. `reason` is safe to show the tenant."""

    reason = NOT_ALLOWED


class InvalidURL(Refused):
    reason = INVALID_URL


class ResolveFailed(Refused):
    """The host does not resolve (or the lookup failed)."""

    reason = COULD_NOT_CONNECT


class ResolveTimeout(Refused):
    reason = TIMED_OUT


@dataclass(frozen=True)
class Policy:
    """What may be reached: `allow_http` admits plain http; `allowed_networks` admits internal addresses."""

    allow_http: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()
    resolve_seconds: float = DEFAULT_RESOLVE_SECONDS

    @property
    def schemes(self) -> tuple[str, ...]:
        return ("https", "http") if self.allow_http else ("https",)


@dataclass(frozen=True)
class Target:
    """A checked URL, in the parts an httpcore request needs."""

    scheme: str
    host: str  # IDNA-encoded, lower case, without brackets or a trailing dot
    port: int
    netloc: bytes  # the Host header
    target: bytes  # path and query


# ---- addresses ------------------------------------------------------------------------------------


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for: IPv4-mapped, NAT64 (well-known prefix) or 6to4."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def refusal(ip: IPAddress, allowed: Iterable[IPNetwork] = ()) -> str | None:
    """Why `ip` may not be connected to (a category, for the operator log), or None when it may."""
    allowed = tuple(allowed)
    inner = embedded_ipv4(ip)
    if inner is not None:
        why = refusal(inner, allowed)
        return None if why is None else f"{why} (embedded in {ip})"
    if ip in METADATA_ADDRESSES:
        return "cloud metadata"
    if any(ip.version == net.version and ip in net for net in allowed):
        return None
    for category in ("unspecified", "loopback", "link_local", "multicast", "reserved", "private"):
        if getattr(ip, f"is_{category}"):
            return category.replace("_", "-")
    if ip.version == 4 and ip in SHARED:
        return "shared"
    if any(ip.version == net.version and ip in net for net in NOT_GLOBAL):
        return "reserved"
    if not ip.is_global:
        return "not global"
    return None


def vet(ip: IPAddress, policy: Policy, host: str) -> None:
    why = refusal(ip, policy.allowed_networks)
    if why is not None:
        raise Refused(f"{host} → {ip}: {why}")


def loose_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The address of a numeric host in inet_aton's forms (``0x7f000001``, ``0177.0.0.1``, ``127.1``)."""
    if not NUMERIC_HOST.match(host):
        return None
    parts = []
    for part in host.rstrip(".").split("."):
        if part[:2].lower() == "0x":
            parts.append(int(part[2:] or "0", 16))
        elif len(part) > 1 and part.startswith("0"):
            if not set(part) <= set("01234567"):
                return None
            parts.append(int(part, 8))
        else:
            parts.append(int(part))
    *head, last = parts
    if any(p > 255 for p in head) or last >= 256 ** (4 - len(head)):
        return None
    value = last
    for i, p in enumerate(head):
        value += p << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def literal_address(host: str) -> IPAddress | None:
    """The address of an IP-literal host; Refused for a numeric host in a non-standard notation."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if NUMERIC_HOST.match(host):
        loose = loose_ipv4(host)
        raise Refused(f"{host} is an IPv4 address in a non-standard notation ({loose or 'invalid'})")
    return None


def check_host(host: str, policy: Policy) -> None:
    """What can be said of the host without a lookup: metadata names and IP literals."""
    if host in METADATA_NAMES:
        raise Refused(f"{host}: cloud metadata name")
    literal = literal_address(host)
    if literal is not None:
        vet(literal, policy, host)


# ---- URLs -----------------------------------------------------------------------------------------


def check_url(url: str, policy: Policy) -> Target:
    """A URL the policy allows (scheme, no credentials, host), without resolving it. Refused otherwise."""
    try:
        parsed = httpx.URL(url)
        port = parsed.port
    except (httpx.InvalidURL, ValueError) as e:
        raise InvalidURL(f"unparsable URL: {e}") from e
    if parsed.scheme not in policy.schemes:
        raise InvalidURL(f"scheme {parsed.scheme!r} is not one of {', '.join(policy.schemes)}")
    if parsed.userinfo:
        raise InvalidURL("credentials in the URL")
    host = parsed.raw_host.decode("ascii").lower().rstrip(".")
    if not host:
        raise InvalidURL("no host")
    check_host(host, policy)
    return Target(
        scheme=parsed.scheme,
        host=host,
        port=port or (443 if parsed.scheme == "https" else 80),
        netloc=parsed.netloc,
        target=parsed.raw_path,
    )


# ---- resolution -----------------------------------------------------------------------------------


def system_resolve(host: str, port: int) -> list[str]:
    """The addresses of `host` from the system resolver (tests replace this to play DNS tricks)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


def _lookup(host: str, port: int, timeout: float) -> list[str]:
    """`system_resolve` under a deadline: getaddrinfo has none, so it runs in a daemon thread that is
    abandoned (it ends with the resolver's own timeout) when the deadline passes."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["addresses"] = system_resolve(host, port)
        except Exception as e:  # socket.gaierror, UnicodeError, …: reported to the caller
            result["error"] = e

    thread = threading.Thread(target=run, name="egress-resolve", daemon=True)
    thread.start()
    thread.join(max(0.0, timeout))
    if thread.is_alive():
        raise ResolveTimeout(f"resolving {host} took more than {timeout:.1f}s")
    if "error" in result:
        raise ResolveFailed(f"resolving {host}: {result['error']}") from result["error"]
    return list(result["addresses"])


def resolve(host: str, port: int, policy: Policy, timeout: float | None = None) -> list[str]:
    """The addresses to connect to for `host`, each allowed: all of them are, or Refused."""
    check_host(host, policy)
    literal = literal_address(host)
    if literal is not None:
        return [str(literal)]
    limit = policy.resolve_seconds if timeout is None else min(timeout, policy.resolve_seconds)
    addresses = list(dict.fromkeys(_lookup(host, port, limit)))
    if not addresses:
        raise ResolveFailed(f"{host} has no addresses")
    for address in addresses:
        vet(ipaddress.ip_address(address), policy, host)
    return addresses


def check_url_resolves(url: str, policy: Policy) -> Target:
    """`check_url`, then `resolve` its host: what the API checks at submit."""
    target = check_url(url, policy)
    resolve(target.host, target.port, policy)
    return target


# ---- connections ----------------------------------------------------------------------------------


def ssl_context() -> ssl.SSLContext:
    """Certificates verified against certifi's roots and the URL's hostname (tests trust their own CA)."""
    return ssl.create_default_context(cafile=certifi.where())


class Deadline:
    """One total deadline (monotonic clock) that every network step shares."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def left(self, timeout: float | None, error: type[Exception]) -> float:
        """What a step may take: its own timeout, capped by what is left; `error` once nothing is."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise error("the total deadline has passed")
        return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """A stream whose every read, write and TLS handshake ends by the deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        left = self._deadline.left(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, left), self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class VettedBackend(httpcore.NetworkBackend):
    """Connects only to vetted addresses of the requested host, within `deadline`. httpcore passes the
    URL's host here and verifies TLS against that same name, so the certificate check is unchanged."""

    def __init__(self, policy: Policy, deadline: Deadline) -> None:
        self._policy = policy
        self._deadline = deadline
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        lookup = self._deadline.left(timeout, ResolveTimeout)
        addresses = resolve(host.strip("[]").lower().rstrip("."), port, self._policy, lookup)
        error: Exception = httpcore.ConnectError(f"{host} has no addresses")
        for address in addresses:
            try:
                stream = self._inner.connect_tcp(
                    address,
                    port,
                    self._deadline.left(timeout, httpcore.ConnectTimeout),
                    local_address,
                    socket_options,
                )
            except httpcore.ConnectError as e:
                error = e
                continue
            return DeadlineStream(stream, self._deadline)
        raise error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise Refused(f"unix socket {path}")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
