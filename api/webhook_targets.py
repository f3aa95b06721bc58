"""Where a job's `webhook_url` may point, checked at submit (after the body's shape: `api.job_specs`).

The policy is `shared.egress` with the webhook settings (`shared.webhooks.egress_policy`): https only
(http where `INFERQ_WEBHOOK_ALLOW_HTTP` is on), no credentials in the URL, and every address the host
resolves to now must be public or in `INFERQ_WEBHOOK_ALLOWED_NETWORKS`. A host that does not resolve (or
not within the lookup's deadline) is refused too, with the same message as one that resolves to an
internal address, so that the answer does not tell a tenant which internal names exist. The worker
checks again at every delivery: what resolves to a public address now may not later.
"""

from __future__ import annotations

import logging

from inferq.shared import egress, webhooks
from inferq.shared.errors import InvalidRequest
from inferq.shared.settings import Settings

log = logging.getLogger(__name__)

FIELD = "webhook_url"


def check_webhook_url(url: str | None, settings: Settings) -> None:
    """400 `invalid_value` on `webhook_url` unless the URL is one a webhook may be sent to now."""
    if url is None:
        return
    policy = webhooks.egress_policy(settings)
    try:
        egress.check_url_resolves(url, policy)
    except egress.InvalidURL as e:
        schemes = " or ".join(f"{s}://" for s in policy.schemes)
        raise InvalidRequest(
            f"webhook_url must be an {schemes} URL without credentials", field=FIELD, code="invalid_value"
        ) from e
    except egress.Refused as e:
        log.info("webhook_url refused at submit: %s", e)
        raise InvalidRequest(
            "webhook_url must name a host that resolves, and only to public addresses",
            field=FIELD,
            code="invalid_value",
        ) from e
