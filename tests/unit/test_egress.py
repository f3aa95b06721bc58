"""The egress policy (shared/egress.py): which URLs and addresses the service may connect to for a tenant.

Pure, except the few cases that resolve names through the system resolver (`localhost`, numeric forms
that getaddrinfo normalises) or a replaced resolver (rebinding)."""

from __future__ import annotations

import ipaddress
import time

import pytest

from inferq.shared import egress
from inferq.shared.settings import Settings, SettingsError

PUBLIC_HTTP = egress.Policy(allow_http=True)
LOCAL_RECEIVERS = egress.Policy(allow_http=True, allowed_networks=(ipaddress.ip_network("127.0.0.1/32"),))

INTERNAL_ADDRESSES = [
    # IPv4
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.5.4", "private"),
    ("192.168.1.1", "private"),
    ("169.254.1.1", "link-local"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "private"),
    ("100.64.0.1", "shared"),
    ("100.127.255.254", "shared"),
    ("192.0.0.8", "reserved"),
    ("198.18.0.1", "private"),
    # cloud metadata
    ("169.254.169.254", "cloud metadata"),
    ("169.254.170.2", "cloud metadata"),
    ("168.63.129.16", "cloud metadata"),
    ("100.100.100.200", "cloud metadata"),
    ("192.0.0.192", "cloud metadata"),
    ("fd00:ec2::254", "cloud metadata"),
    # IPv6
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fe80::1", "link-local"),
    ("fd12:3456::1", "private"),
    ("ff02::1", "multicast"),
    ("2001:db8::1", "private"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "private"),  # Teredo
    ("::7f00:1", "reserved"),  # IPv4-compatible ::127.0.0.1
    ("64:ff9b:1::a00:1", "reserved"),  # local-use NAT64
    # IPv6 forms that embed an IPv4 address: judged by it
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "cloud metadata"),
    ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
    ("64:ff9b::a9fe:a9fe", "cloud metadata"),  # NAT64 of 169.254.169.254
    ("2002:a00:1::1", "private"),  # 6to4 of 10.0.0.1
    ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
]

PUBLIC_ADDRESSES = ["8.8.8.8", "93.184.215.14", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize(("address", "category"), INTERNAL_ADDRESSES)
def test_internal_addresses_are_refused_with_their_category(address: str, category: str) -> None:
    # when: an internal address is judged
    why = egress.refusal(ipaddress.ip_address(address))
    # then: refused, and the operator's log can say why
    assert why is not None and why.startswith(category), (address, why)


@pytest.mark.parametrize("address", PUBLIC_ADDRESSES)
def test_public_addresses_are_allowed(address: str) -> None:
    assert egress.refusal(ipaddress.ip_address(address)) is None


def test_the_allow_list_admits_internal_networks_but_never_metadata() -> None:
    # given: an operator's allow-list of a loopback address, a private network and link-local space
    allowed = [ipaddress.ip_network(n) for n in ("127.0.0.1/32", "10.20.0.0/16", "169.254.0.0/16")]

    # then: those addresses pass, also when embedded in IPv6
    for address in ("127.0.0.1", "10.20.3.4", "::ffff:10.20.3.4", "169.254.1.1"):
        assert egress.refusal(ipaddress.ip_address(address), allowed) is None, address
    # and: addresses outside the list stay refused
    for address in ("127.0.0.2", "10.21.0.1", "::1"):
        assert egress.refusal(ipaddress.ip_address(address), allowed) is not None, address
    # and: metadata stays refused even inside an allowed network
    assert egress.refusal(ipaddress.ip_address("169.254.169.254"), allowed) == "cloud metadata"


BAD_URLS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://METADATA.google.internal./computeMetadata/v1/",
    "http://metadata/computeMetadata/v1/",
    "http://instance-data/latest/",
    "http://10.0.0.1/",
    "http://127.0.0.1:5432/",
    "http://0x7f000001/",
    "http://2130706433/",
    "http://0177.0.0.1/",
    "http://127.1/",
    "http://0x7f.1/",
    "http://017700000001/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[2002:a9fe:a9fe::]/",
    "http://[::1]:6379/",
    "http://[fe80::1]/",
    "http://100.64.0.1/",
    "http://0.0.0.0:5432/",
    "http://localhost:5432/",
    "http://localhost./",
    "https://user:secret@8.8.8.8/hook",
    "ftp://8.8.8.8/hook",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_INFO",
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_internal_and_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(egress.Refused):
        egress.check_url_resolves(url, PUBLIC_HTTP)


@pytest.mark.parametrize("host", ["0x7f000001", "2130706433", "0177.0.0.1", "127.1", "0x7f.0.0.1", "127.0.1"])
def test_odd_ipv4_notations_parse_to_the_address_getaddrinfo_would_reach_and_are_refused(host: str) -> None:
    # then: the literal is read the way inet_aton reads it ...
    assert egress.loose_ipv4(host) == ipaddress.IPv4Address("127.0.0.1")
    # ... and refused as a host, with or without a lookup
    with pytest.raises(egress.Refused):
        egress.check_host(host, LOCAL_RECEIVERS)
    with pytest.raises(egress.Refused):
        egress.resolve(host, 80, LOCAL_RECEIVERS)


def test_names_are_resolved_and_every_address_vetted(monkeypatch: pytest.MonkeyPatch) -> None:
    # given: a resolver where one name has a public and a private address
    answers = {"mixed.test": ["8.8.8.8", "10.0.0.1"], "public.test": ["8.8.8.8", "2606:4700::1111"]}
    monkeypatch.setattr(egress, "system_resolve", lambda host, port: answers[host])

    # then: one internal address is enough to refuse the name; all public ones pass
    with pytest.raises(egress.Refused):
        egress.resolve("mixed.test", 443, PUBLIC_HTTP)
    assert egress.resolve("public.test", 443, PUBLIC_HTTP) == ["8.8.8.8", "2606:4700::1111"]
    # and: the real resolver's localhost is loopback, refused unless allowed
    with pytest.raises(egress.Refused):
        egress.resolve("localhost", 80, PUBLIC_HTTP)


def test_a_slow_lookup_is_cut_at_its_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    # given: a resolver that hangs for 5 s
    def hanging(host: str, port: int) -> list[str]:
        time.sleep(5)
        return ["8.8.8.8"]

    monkeypatch.setattr(egress, "system_resolve", hanging)

    # when: a name is resolved with a 0.3 s deadline
    started = time.monotonic()
    with pytest.raises(egress.ResolveTimeout) as e:
        egress.resolve("slow.test", 443, PUBLIC_HTTP, timeout=0.3)

    # then: it gives up at the deadline, as "timed out"
    assert time.monotonic() - started < 1.5
    assert e.value.reason == "timed out"


def test_https_only_unless_http_is_allowed() -> None:
    with pytest.raises(egress.InvalidURL):
        egress.check_url("http://8.8.8.8/hook", egress.Policy())
    assert egress.check_url("https://8.8.8.8:8443/hook?a=1", egress.Policy()).target == b"/hook?a=1"
    assert egress.check_url("http://8.8.8.8/hook", PUBLIC_HTTP).port == 80


def test_the_webhook_settings_are_read_from_the_environment() -> None:
    # given: the new variables
    env = {
        "INFERQ_WEBHOOK_ALLOW_HTTP": "true",
        "INFERQ_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32, 10.20.0.0/16 fd00:1::/64",
        "INFERQ_WEBHOOK_TIMEOUT_SECONDS": "7",
        "INFERQ_WEBHOOK_THREADS": "2",
    }
    settings = Settings.from_env(env)
    # then
    assert settings.webhook_allow_http is True
    assert [str(n) for n in settings.webhook_allowed_networks] == [
        "127.0.0.1/32",
        "10.20.0.0/16",
        "fd00:1::/64",
    ]
    assert (settings.webhook_timeout_seconds, settings.webhook_threads) == (7, 2)
    # and: the defaults are https only, no internal network, 10 s; the earlier timeout name still works
    default = Settings.from_env({})
    assert (default.webhook_allow_http, default.webhook_allowed_networks) == (False, ())
    assert Settings.from_env({"INFERQ_WEBHOOK_TIMEOUT": "3"}).webhook_timeout_seconds == 3
    with pytest.raises(SettingsError):
        Settings.from_env({"INFERQ_WEBHOOK_ALLOWED_NETWORKS": "10.0.0.0/33"})
