"""ELMo (forward + backward LSTM language models, shared token embedding and softmax) on Jane Austen's
six novels; downstream: which novel a passage comes from.

A 2-layer bidirectional LSTM with projections (ssl_jax.models.lstm.BiLM); the loss is the forward plus the
backward LM's mean NLL. Downstream features are ELMo's learned mix of the layers (Peters et al. 2018,
eq. 1), averaged over the passage. Data: a directory of the six novels as UTF-8 .txt files (the label of
a passage is its file), e.g. ../shared/data/austen beside this checkout; contiguous-block splits and a
2048-id BPE trained on the train split (ssl_jax.data.text).

  ssl-jax pretrain --config configs/elmo_austen.py --workdir runs/elmo_austen \
      --config.data.data_dir=../shared/data/austen

Reports validation perplexity ("perplexity": exp of the mean of the forward and backward NLL, with each
direction's beside it), kNN / linear probe, and novel classification fine-tuned from the pre-trained
model ("finetune") and from random initialisation ("finetune_scratch").
Expected result: see benchmarks/results/austen.md (the `:cpu` variant), made by
benchmarks/text_downstream.py.

Variants: `:cpu` (the measured CPU run: 256 LSTM cells, 300 steps, 300 fine-tuning steps), `:smoke`
(a tiny model, 3 steps, for tests), `:base` (ELMo's published size: 2 layers of 4096 LSTM cells
projected to 512, 512-wide token embedding; accelerator-sized; ELMo's character CNN is replaced by the
BPE embedding).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util
from ssl_jax.methods import text_common

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = text_common.base_config("elmo")
    config.data.data_dir = "data/austen"  # set --config.data.data_dir to where the .txt files are
    config.model = families.bilm(embed_dim=128, lstm_dim=512, dropout_rate=0.1)
    config.eval.protocols = ("perplexity", "knn", "linear", "finetune", "finetune_scratch")
    # `:cpu`: the LSTM scan is slow on a CPU (4.7 s a step at 512 cells, 2-core machine shared with
    # two other jobs): half the cells, and a shorter fine-tuning.
    cpu = {
        "model.lstm_dim": 256,
        "num_steps": 300,
        "optim.warmup_steps": 30,
        "checkpoint_every_steps": 300,
        "eval.finetune_steps": 300,
        "eval.finetune_warmup_steps": 30,
    }
    tiny = {"model": families.bilm(embed_dim=16, lstm_dim=32, dropout_rate=0.0)}
    elmo = {
        **{"model.embed_dim": 512, "model.lstm_dim": 4096, "model.dtype": "bfloat16"},
        **{"data.vocab_size": 32768, "batch_size": 128, "num_steps": 400_000},
        **{"eval.finetune_learning_rate": 1e-4, "eval.finetune_steps": 3000},
    }
    return datasets.select(
        config,
        variant,
        cpu=datasets.changes(cpu),
        smoke=families.text_smoke("perplexity", tiny),
        base=datasets.changes(elmo),
    )
