"""`POST /v1/jobs?dry_run=true`: what a predict job would do, computed synchronously; no job is created.

The input file is read whole up to `MAX_WHOLE_BYTES`; a larger one is sampled (its first `SAMPLE_BYTES`,
cut at a line end) and the counts are scaled to the file's record count (`sampled: true`). Records are
parsed exactly as a worker parses a part (`shared.records.parse_part`) and tokenized with the model's own
tokenizer: only the tokenizer is loaded, through the `tokenizers` library (transformers would import
torch, which the API never loads), from its `tokenizer.json`, else a WordPiece `vocab.txt`. The compute
estimate divides the tokens the model would see (truncated to its max length) by a throughput: the one
measured in this tenant's earlier parts on the same model (tokens over forward seconds) when there are
any, else `DEFAULT_TOKENS_PER_SECOND` (a CPU worker on one small encoder; image tasks use
`DEFAULT_IMAGES_PER_SECOND`).

Estimated by bytes where tokenizing is not possible or too costly: a text longer than `TOKENIZE_CHARS` has
its head tokenized and the count scaled to its length, and a file whose sample holds no whole record (one
record larger than `SAMPLE_BYTES`) is taken as its record count of records of equal size, at the tokens
per byte of its head. A non-empty text never counts 0 tokens.
"""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from inferq.api.contract.objects import DRY_RUN_FIRST_ERRORS
from inferq.shared import records as recs
from inferq.shared.errors import Unprocessable
from inferq.shared.models import Job, JobPart
from inferq.shared.registry import ResolvedModel, builtin_files_path
from inferq.shared.settings import Settings
from inferq.shared.states import PartStatus
from inferq.shared.storage import Storage
from inferq.shared.tasks import IMAGE_CLASSIFICATION, input_fields

if TYPE_CHECKING:
    from tokenizers import Tokenizer

MAX_WHOLE_BYTES = 20 * 1024 * 1024
SAMPLE_BYTES = 4 * 1024 * 1024
FIRST_ERRORS = DRY_RUN_FIRST_ERRORS
DEFAULT_TOKENS_PER_SECOND = 4000.0
DEFAULT_IMAGES_PER_SECOND = 20.0
DEFAULT_MAX_LENGTH = 512
BUCKET_EDGES = (16, 32, 64, 128, 256)
TOKENIZER_FILES = frozenset(
    {
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "vocab.txt",
        "vocab.json",
        "merges.txt",
        "added_tokens.json",
        "sentencepiece.bpe.model",
        "spiece.model",
    }
)
MEASURED_PARTS = 50
# A longer text is estimated from its head of this many characters (tokenizing megabytes takes seconds).
TOKENIZE_CHARS = 64 * 1024
MIN_SECONDS = 0.001  # what an estimate of some tokens rounds up to, never 0


def bucket_of(tokens: int) -> str:
    low = 1
    for edge in BUCKET_EDGES:
        if tokens <= edge:
            return f"{low}-{edge}"
        low = edge + 1
    return f"{low}+"


def empty_histogram() -> dict[str, int]:
    return {bucket_of(edge): 0 for edge in BUCKET_EDGES} | {bucket_of(BUCKET_EDGES[-1] + 1): 0}


def _tokenizer_dir(model: ResolvedModel, storage: Storage, cache_dir: Path) -> Path:
    """A local folder with the model's tokenizer files only (the weights are never downloaded)."""
    if model.builtin:
        return builtin_files_path(model.name)
    target = cache_dir / "tokenizers" / model.cache_key
    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".download-"))
    for key in storage.list(model.source):
        rel = key[len(model.source) :]
        if rel in TOKENIZER_FILES:
            storage.download_to(key, tmp / rel)
    (tmp / ".complete").touch()
    try:
        tmp.rename(target)
    except OSError:  # another request finished the same download first
        return target
    return target


@functools.lru_cache(maxsize=8)
def load_tokenizer(folder: str) -> Tokenizer:
    """The model's tokenizer, without truncation or padding: its `tokenizer.json`, else a BERT WordPiece
    tokenizer over its `vocab.txt` (lower-casing as its tokenizer_config.json says)."""
    from tokenizers import Tokenizer
    from tokenizers.implementations import BertWordPieceTokenizer

    path = Path(folder)
    if (path / "tokenizer.json").is_file():
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    elif (path / "vocab.txt").is_file():
        config = path / "tokenizer_config.json"
        lower = json.loads(config.read_text("utf-8")).get("do_lower_case", True) if config.is_file() else True
        wordpiece = BertWordPieceTokenizer(str(path / "vocab.txt"), lowercase=bool(lower))
        tokenizer = Tokenizer.from_str(wordpiece.to_str())
    else:
        raise Unprocessable(
            "a dry run needs the model's tokenizer.json (or a WordPiece vocab.txt)",
            field="model",
            code="tokenizer_unsupported",
        )
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def measured_tokens_per_second(session: Session, tenant_id: str, model_ref: str) -> float | None:
    """Tokens over forward seconds in this tenant's latest finished parts on this model, if any."""
    rows = session.execute(
        select(JobPart.stats)
        .join(Job, Job.id == JobPart.job_id)
        .where(Job.tenant_id == tenant_id, Job.model == model_ref, JobPart.status == PartStatus.DONE)
        .order_by(JobPart.finished_at.desc())
        .limit(MEASURED_PARTS)
    ).scalars()
    tokens = seconds = 0.0
    for stats in rows:
        if stats and stats.get("tokens") and stats.get("forward_seconds"):
            tokens += float(stats["tokens"])
            seconds += float(stats["forward_seconds"])
    return tokens / seconds if tokens and seconds > 0 else None


def _read(storage: Storage, key: str, size: int) -> tuple[bytes, bytes, bool]:
    """The file's bytes, or its first SAMPLE_BYTES up to the last line end; the head read (the same
    bytes when the file was read whole); and whether it was sampled."""
    if size <= MAX_WHOLE_BYTES:
        data = b"".join(storage.iter_bytes(key))
        return data, data, False
    head = b"".join(storage.iter_bytes(key, 0, SAMPLE_BYTES))
    return head[: head.rfind(b"\n") + 1], head, True


def token_counts(tokenizer: Tokenizer, texts: list[str]) -> list[int]:
    """Tokens of each text with the model's special tokens; a text over TOKENIZE_CHARS is estimated from
    its head (scaled by its length), and a non-empty text counts at least 1."""
    if not texts:
        return []
    heads = [t[:TOKENIZE_CHARS] for t in texts]
    special = tokenizer.num_special_tokens_to_add(False)
    counts: list[int] = []
    for text, head, encoding in zip(
        texts, heads, tokenizer.encode_batch(heads, add_special_tokens=True), strict=True
    ):
        n = len(encoding.ids)
        if len(head) < len(text):
            n = special + round((n - special) * len(text) / len(head))
        counts.append(max(n, 1) if text else n)
    return counts


def _by_bytes(tokenizer: Tokenizer, head: bytes, file_bytes: int, records: int) -> list[int]:
    """Token counts of a file's `records` records when none fits the sample: records of equal size, at the
    tokens per byte of the head."""
    if records <= 0:
        return []
    sample = head[:TOKENIZE_CHARS].decode("utf-8", "ignore")  # a character cut in two is dropped
    per_byte = len(tokenizer.encode(sample, add_special_tokens=False).ids) / max(len(sample.encode()), 1)
    special = tokenizer.num_special_tokens_to_add(False)
    return [max(1, special + round(per_byte * file_bytes / records))] * records


def dry_run(
    storage: Storage,
    settings: Settings,
    model: ResolvedModel,
    task: str,
    file_key: str,
    file_format: str,
    file_bytes: int,
    file_records: int,
    measured: float | None,
    max_length: int | None = None,
) -> dict[str, Any]:
    """The dry-run answer of docs/API.md (plus the throughput it assumed and the tokens it counted)."""
    data, head, sampled = _read(storage, file_key, file_bytes)
    header: list[str] | None = None
    first_line = 1
    if file_format == recs.CSV:
        header = recs.read_header(data[: 1024 * 1024])
        cut = data.find(b"\n") + 1
        data, first_line = data[cut:], 2
    good, bad = recs.parse_part(
        data, file_format, first_line=first_line, first_record=0, fields=input_fields(task), header=header
    )
    seen = len(good) + len(bad)
    sample_bytes = len(data)
    scale = file_records / seen if sampled and seen else 1.0
    max_length = max_length or int(model.config.get("max_length") or DEFAULT_MAX_LENGTH)
    histogram = empty_histogram()
    model_tokens = 0
    if task == IMAGE_CLASSIFICATION:
        histogram = {}
        throughput = {"images_per_second": DEFAULT_IMAGES_PER_SECOND, "source": "default"}
        seconds = len(good) / DEFAULT_IMAGES_PER_SECOND
    else:
        tokenizer = load_tokenizer(str(_tokenizer_dir(model, storage, settings.model_cache_dir)))
        if sampled and not seen:  # not one whole record in the sample: estimate every record by bytes
            counts, sample_bytes = _by_bytes(tokenizer, head, file_bytes, file_records), len(head)
        else:
            counts = token_counts(tokenizer, [str(r.value) for r in good])
        for n in counts:
            histogram[bucket_of(n)] += 1
            model_tokens += min(n, max_length)
        rate = measured or DEFAULT_TOKENS_PER_SECOND
        throughput = {"tokens_per_second": round(rate, 1), "source": "measured" if measured else "default"}
        seconds = model_tokens / rate
    return {
        "object": "job.dry_run",
        "task": task,
        "model": model.ref,
        "records": file_records if sampled else seen,
        "bad_records": round(len(bad) * scale),
        "first_errors": [
            {"id": e.id, "line": e.line, "error": {"code": e.code, "message": e.message}}
            for e in bad[:FIRST_ERRORS]
        ],
        "token_histogram": {k: round(v * scale) for k, v in histogram.items()},
        "tokens": round(model_tokens * scale),
        "estimated_seconds": max(round(seconds * scale, 3), MIN_SECONDS) if seconds else 0.0,
        "throughput": throughput,
        "sampled": sampled,
        "sampled_bytes": sample_bytes if sampled else None,
    }
