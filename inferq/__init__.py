"""`inferq`: the Python client of the inferq HTTP API.

    import inferq

    with inferq.Client("http://127.0.0.1:8000", api_key) as client:
        job = client.submit_file("sentences.jsonl", task="embedding", model="minilm-l6")
        job = client.wait(job.id, on_progress=lambda j: print(j.progress.completed, "/", j.progress.total))
        for row in client.iter_results(job.id):
            ...

The code lives in `inferq/client.py`; the bare install (`pip install inferq`) needs only httpx, orjson and
click. The service installs under this namespace too (`inferq.api`, `inferq.shared`, `inferq.worker`,
`inferq.migrations`: the extras `server` and `worker`). `verify_webhook` checks the
signature of a webhook inferq sent (`shared/webhook_signature.py`).
"""

from inferq.client import (
    ApiConnectionError,
    ApiError,
    AuthenticationError,
    Client,
    ClientError,
    ConflictError,
    FileObject,
    InvalidRequestError,
    Job,
    JobError,
    JobPage,
    NotFoundError,
    PayloadTooLargeError,
    Progress,
    RateLimitError,
    UnavailableError,
    UnprocessableError,
    UnsupportedMediaTypeError,
    WaitTimeout,
)
from inferq.shared.webhook_signature import WebhookVerificationError
from inferq.shared.webhook_signature import verify as verify_webhook

__all__ = [
    "ApiConnectionError",
    "ApiError",
    "AuthenticationError",
    "Client",
    "ClientError",
    "ConflictError",
    "FileObject",
    "InvalidRequestError",
    "Job",
    "JobError",
    "JobPage",
    "NotFoundError",
    "PayloadTooLargeError",
    "Progress",
    "RateLimitError",
    "UnavailableError",
    "UnprocessableError",
    "UnsupportedMediaTypeError",
    "WaitTimeout",
    "WebhookVerificationError",
    "verify_webhook",
]
