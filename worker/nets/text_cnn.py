"""A small text classifier trained from scratch: token embeddings, parallel convolutions over 1..3-token
windows, max- and mean-pooling, and a linear head (a TextCNN, Kim 2014), with a tokenizer learned from
the training file. Reads any language the tokenizer was trained on, CJK included (one token a character).

With `ngram_buckets > 0` it also embeds every hashed token n-gram (`ngram_orders`: characters, bigrams
and trigrams of Chinese text, words and word pairs elsewhere; fastText's bag of n-grams) and pools them
two ways, a mean and a learned attention (a softmax over the n-grams of a text, so the few that carry the
label weigh most), next to the convolution features; `kernel_sizes=[]` keeps only this bag. The hash is
computed from the token ids inside the model, so the tokenizer and the predict path are unchanged.
Configs without these keys load as before (no n-grams).

Train jobs from scratch now build the n-gram bag of `worker.nets.ngram_bag` instead (it generalised better
on Chinese reviews; see benchmarks/RESULTS.md); folders of this family still load, predict and resume.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

# n-gram hashing: a polynomial over the token ids, modulo a prime that keeps products inside int64.
HASH_MULTIPLIER = 1_000_003
HASH_MODULUS = 2_147_483_647


class TextCnnConfig(PretrainedConfig):
    model_type = "inferq-textcnn"

    def __init__(
        self,
        vocab_size: int = 8000,
        embedding_size: int = 128,
        filters: int = 128,
        kernel_sizes: tuple[int, ...] | list[int] = (1, 2, 3),
        dropout: float = 0.3,
        max_position_embeddings: int = 256,
        pad_token_id: int = 0,
        ngram_buckets: int = 0,
        ngram_orders: tuple[int, ...] | list[int] = (2, 3),
        **kwargs: Any,
    ) -> None:
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size
        self.filters = filters
        self.kernel_sizes = list(kernel_sizes)
        self.dropout = dropout
        self.max_position_embeddings = max_position_embeddings
        self.ngram_buckets = ngram_buckets
        self.ngram_orders = list(ngram_orders)
        kwargs["pad_token_id"] = pad_token_id
        super().__init__(**kwargs)


class TextCnnForSequenceClassification(PreTrainedModel):
    config_class = TextCnnConfig
    base_model_prefix = "textcnn"
    main_input_name = "input_ids"

    def __init__(self, config: TextCnnConfig) -> None:
        super().__init__(config)
        self.embeddings = nn.Embedding(
            config.vocab_size, config.embedding_size, padding_idx=config.pad_token_id
        )
        self.convs = nn.ModuleList(
            nn.Conv1d(config.embedding_size, config.filters, k, padding=k - 1) for k in config.kernel_sizes
        )
        self.dropout = nn.Dropout(config.dropout)
        features = 2 * config.filters * len(config.kernel_sizes)
        self.ngrams: nn.Embedding | None = None
        self.ngram_attention: nn.Linear | None = None
        if config.ngram_buckets > 0:
            self.ngrams = nn.Embedding(config.ngram_buckets, config.embedding_size)
            self.ngram_attention = nn.Linear(config.embedding_size, 1)
            features += 2 * config.embedding_size
        self.classifier = nn.Linear(features, int(config.num_labels or 2))
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.1)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, (nn.Linear, nn.Conv1d)):
            nn.init.kaiming_uniform_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **_: Any,
    ) -> SequenceClassifierOutput:
        if attention_mask is None:
            attention_mask = (input_ids != self.config.pad_token_id).long()
        pooled = []
        if len(self.convs):
            x = self.dropout(self.embeddings(input_ids)).transpose(1, 2)  # [batch, emb, tokens]
            for conv in self.convs:
                h = F.relu(conv(x))[:, :, : input_ids.shape[1]]  # [batch, filters, tokens]
                mask = attention_mask[:, None, :].to(h.dtype)
                pooled.append(h.masked_fill(mask == 0, -1e4).max(dim=2).values)
                pooled.append((h * mask).sum(dim=2) / mask.sum(dim=2).clamp(min=1.0))
        if self.ngrams is not None:
            pooled.append(self._ngram_features(input_ids, attention_mask))
        logits = self.classifier(self.dropout(torch.cat(pooled, dim=1)))
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def _ngram_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Mean- and attention-pooled embeddings of the hashed n-grams of real tokens, [batch, 2 * emb]."""
        assert self.ngrams is not None and self.ngram_attention is not None
        buckets = int(self.config.ngram_buckets)
        ids = input_ids.long()
        mask = attention_mask.bool()
        keys: list[torch.Tensor] = []
        valid: list[torch.Tensor] = []
        for n in self.config.ngram_orders:
            width = ids.shape[1] - n + 1
            if width <= 0:
                continue
            key = torch.full_like(ids[:, :width], int(n))
            ok = torch.ones_like(mask[:, :width])
            for k in range(n):
                key = (key * HASH_MULTIPLIER + ids[:, k : k + width]) % HASH_MODULUS
                ok = ok & mask[:, k : k + width]
            keys.append(key % buckets)
            valid.append(ok)
        if not keys:
            return ids.new_zeros((ids.shape[0], 2 * self.config.embedding_size), dtype=torch.float32)
        present = torch.cat(valid, dim=1)  # [batch, n-grams]
        vectors = self.dropout(self.ngrams(torch.cat(keys, dim=1)))  # [batch, n-grams, emb]
        weights = present.to(vectors.dtype)[..., None]
        mean = (vectors * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        scores = self.ngram_attention(vectors).squeeze(-1).float().masked_fill(~present, -1e4)
        attention = torch.softmax(scores, dim=1).to(vectors.dtype)[..., None]
        return torch.cat([mean, (attention * vectors).sum(dim=1)], dim=1)
