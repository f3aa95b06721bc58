"""Standard Webhooks signatures and the webhook retry schedule (pure functions)."""

from __future__ import annotations

import base64

import pytest

from inferq.shared.webhook_signature import WebhookVerificationError, headers, new_secret, sign, verify
from inferq.shared.webhooks import MAX_BACKOFF_SECONDS, backoff_seconds

# The example of the Standard Webhooks reference libraries.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_signature_matches_the_standard_webhooks_example() -> None:
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_a_new_secret_is_32_random_bytes_after_the_prefix() -> None:
    # when
    a, b = new_secret(), new_secret()
    # then
    assert a.startswith("whsec_") and len(base64.b64decode(a.removeprefix("whsec_"))) == 32
    assert a != b


def test_verify_accepts_what_headers_signed() -> None:
    # given
    secret = new_secret()
    sent = headers(secret, "msg_1", b'{"id":"job_1"}', timestamp=1_700_000_000)
    # when / then: no error, whatever the case of the header names
    verify(secret, {k.title(): v for k, v in sent.items()}, b'{"id":"job_1"}', now=1_700_000_010)


def test_verify_accepts_any_of_several_signatures() -> None:
    secret = new_secret()
    sent = headers(secret, "msg_1", b"{}", timestamp=100)
    sent["webhook-signature"] = f"v1,AAAA {sent['webhook-signature']}"
    verify(secret, sent, b"{}", now=100)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"body": b'{"id":"job_2"}'}, "no signature matches"),
        ({"secret": new_secret()}, "no signature matches"),
        ({"now": 1_700_000_000 + 301}, "too far"),
        ({"now": 1_700_000_000 - 301}, "too far"),
        ({"drop": "webhook-id"}, "missing header webhook-id"),
        ({"timestamp": "soon"}, "not an integer"),
    ],
)
def test_verify_refuses_what_does_not_check_out(change: dict[str, object], why: str) -> None:
    # given: a delivery signed with one secret
    secret = new_secret()
    body = b'{"id":"job_1"}'
    received = headers(secret, "msg_1", body, timestamp=1_700_000_000)
    if "drop" in change:
        del received[str(change["drop"])]
    if "timestamp" in change:
        received["webhook-timestamp"] = str(change["timestamp"])
    # when / then
    with pytest.raises(WebhookVerificationError, match=why):
        verify(
            str(change.get("secret", secret)),
            received,
            change.get("body", body),  # type: ignore[arg-type]
            now=float(change.get("now", 1_700_000_000)),  # type: ignore[arg-type]
        )


def test_retries_wait_twice_as_long_each_time_up_to_an_hour() -> None:
    assert [backoff_seconds(n, 10) for n in range(1, 6)] == [10, 20, 40, 80, 160]
    assert backoff_seconds(30, 10) == MAX_BACKOFF_SECONDS
