"""`inferq`: the Python client of the inferq HTTP API.

    import inferq

    with inferq.Client("http://127.0.0.1:8000", api_key) as client:
        job = client.submit_file("sentences.jsonl", task="embedding", model="minilm-l6")
        job = client.wait(job.id, on_progress=lambda j: print(j.progress.completed, "/", j.progress.total))
        for row in client.iter_results(job.id):
            ...

The code lives in `shared/client.py` (still importable as `inferq.client`); this package is its public
name, mapped from `shared/inferq/` by the packaging (pyproject.toml). `verify_webhook` checks the
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
