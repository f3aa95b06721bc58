"""The API's key cache (api.auth.KeyCache): a found key's tenant is reused for a bounded time, counted
from before the lookup, so a revocation takes effect within that bound; refusals are never reused."""

from __future__ import annotations

import pytest

from inferq.api import auth
from inferq.api.auth import KeyCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Keys:
    """The database's answer per key hash, and how often it was asked."""

    def __init__(self, tenants: dict[str, str]) -> None:
        self.tenants = dict(tenants)
        self.asked = 0

    def lookup(self, key_hash: str) -> str | None:
        self.asked += 1
        return self.tenants.get(key_hash)


def test_a_found_key_is_reused_until_its_seconds_have_passed_since_the_lookup() -> None:
    # given a cache of 2 s and a live key
    clock, keys = Clock(), Keys({"h1": "tenant_a"})
    cache = KeyCache(2, clock=clock)

    # when the key is asked for now, 1.9 s later and 2.0 s later
    first = cache.tenant("h1", keys.lookup)
    clock.now += 1.9
    second = cache.tenant("h1", keys.lookup)
    asked_within = keys.asked
    clock.now += 0.1
    third = cache.tenant("h1", keys.lookup)

    # then all three name the tenant; the database was asked once within the 2 s and again at 2 s
    assert first == second == third == "tenant_a"
    assert asked_within == 1
    assert keys.asked == 2


def test_a_revoked_key_is_refused_at_most_the_cache_seconds_after_the_revocation() -> None:
    # given a key cached at t=0 by a 2 s cache
    clock, keys = Clock(), Keys({"h1": "tenant_a"})
    cache = KeyCache(2, clock=clock)
    start = clock.now
    assert cache.tenant("h1", keys.lookup) == "tenant_a"

    # when it is revoked at t=0.5
    clock.now = start + 0.5
    del keys.tenants["h1"]
    answers = {}
    for t in (0.6, 1.9, 2.0, 2.5):
        clock.now = start + t
        answers[t] = cache.tenant("h1", keys.lookup)

    # then it still works from the cache before t=2 and is refused from t=2 on (within 2 s of the revocation)
    assert answers == {0.6: "tenant_a", 1.9: "tenant_a", 2.0: None, 2.5: None}


def test_unknown_keys_are_never_remembered_and_zero_seconds_turns_the_cache_off() -> None:
    # given a 2 s cache, an uncached one, and a database that knows only h1
    clock, keys = Clock(), Keys({"h1": "tenant_a"})
    cached, uncached = KeyCache(2, clock=clock), KeyCache(0, clock=clock)

    # when an unknown key is asked for twice on the cache, and a known key twice without it
    unknown = [cached.tenant("nope", keys.lookup) for _ in range(2)]
    asked_for_unknown = keys.asked
    known = [uncached.tenant("h1", keys.lookup) for _ in range(2)]

    # then the unknown key was looked up each time, and so was the known key without the cache
    assert unknown == [None, None]
    assert asked_for_unknown == 2
    assert known == ["tenant_a", "tenant_a"]
    assert keys.asked == 4


def test_the_cache_holds_at_most_its_limit_of_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    # given a cache limited to 3 keys, full of live entries
    monkeypatch.setattr(auth, "MAX_CACHED_KEYS", 3)
    clock, keys = Clock(), Keys({f"h{i}": f"tenant_{i}" for i in range(5)})
    cache = KeyCache(60, clock=clock)
    for i in range(3):
        cache.tenant(f"h{i}", keys.lookup)

    # when a fourth key is found, then the four are asked for again
    assert cache.tenant("h3", keys.lookup) == "tenant_3"
    asked = keys.asked
    again = [cache.tenant(f"h{i}", keys.lookup) for i in (3, 0, 1, 2)]

    # then the cache had started over with only the fourth: it alone came from memory
    assert again == ["tenant_3", "tenant_0", "tenant_1", "tenant_2"]
    assert keys.asked - asked == 3
