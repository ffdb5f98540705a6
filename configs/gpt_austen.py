"""GPT (next-token LM) on Jane Austen's six novels; downstream: which novel a passage comes from.

Data: a directory of the six novels as UTF-8 .txt files (the label of a passage is its file), e.g.
../shared/data/austen beside this checkout. Splits are contiguous blocks of each novel (80/10/10,
ssl_jax.data.text); the BPE tokenizer (2048 ids) is trained on the train split and cached.

  ssl-jax pretrain --config configs/gpt_austen.py --workdir runs/gpt_austen \
      --config.data.data_dir=../shared/data/austen

Reports validation perplexity ("perplexity"), kNN / linear probe on mean-pooled features, and novel
classification fine-tuned from the pre-trained model ("finetune") and from random initialisation
("finetune_scratch").
Expected result: see benchmarks/results/austen.md (made by benchmarks/text_downstream.py).

Variants: `:smoke` (a tiny model, 3 steps, for tests), `:base` (GPT-2 small: 12 layers x 768, 12 heads,
seq 1024, 50257-id BPE, bfloat16; accelerator-sized).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util
from ssl_jax.methods import text_common

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = text_common.base_config("gpt")
    config.data.data_dir = "data/austen"  # set --config.data.data_dir to where the .txt files are
    config.eval.protocols = ("perplexity", "knn", "linear", "finetune", "finetune_scratch")
    gpt2_small = {
        "data.vocab_size": 50257,
        "batch_size": 512,
        "num_steps": 100_000,
        "optim.learning_rate": 6e-4,
        "optim.b2": 0.95,
        "optim.weight_decay": 0.1,
        "optim.warmup_steps": 2000,
        "eval.finetune_learning_rate": 6.25e-5,  # GPT's fine-tuning rate
    }
    base = families.text_base(gpt2_small, seq_len=1024)
    return datasets.select(config, variant, smoke=families.text_smoke("perplexity"), base=base)
