"""BERT (masked LM, 15% of tokens, 80/10/10) on Jane Austen's six novels; downstream: which novel a
passage comes from.

Data: a directory of the six novels as UTF-8 .txt files (the label of a passage is its file), e.g.
../shared/data/austen beside this checkout. Splits are contiguous blocks of each novel (80/10/10,
ssl_jax.data.text); the BPE tokenizer (2048 ids) is trained on the train split and cached.

  ssl-jax pretrain --config configs/bert_austen.py --workdir runs/bert_austen \
      --config.data.data_dir=../shared/data/austen

Reports masked-token accuracy on the validation split ("masked_accuracy"), kNN / linear probe on
mean-pooled features, and novel classification fine-tuned from the pre-trained model ("finetune") and
from random initialisation ("finetune_scratch").
Expected result: see benchmarks/results/austen.md (made by benchmarks/text_downstream.py).

Variants: `:smoke` (a tiny model, 3 steps, for tests), `:base` (BERT-base: 12 layers x 768, 12 heads,
seq 512, 30522-id vocabulary, bfloat16; accelerator-sized).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util
from ssl_jax.methods import text_common

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = text_common.base_config("bert")
    config.data.data_dir = "data/austen"  # set --config.data.data_dir to where the .txt files are
    config.bert = ml_collections.ConfigDict(dict(mask_rate=0.15, mask_frac=0.8, random_frac=0.1))
    config.eval.protocols = ("masked_accuracy", "knn", "linear", "finetune", "finetune_scratch")
    bert_base = {
        "data.vocab_size": 30522,
        "batch_size": 256,
        "num_steps": 1_000_000,
        "optim.learning_rate": 1e-4,
        "optim.b2": 0.999,
        "optim.weight_decay": 0.01,
        "optim.warmup_steps": 10_000,
        "eval.finetune_learning_rate": 2e-5,  # BERT's GLUE fine-tuning grid: 2e-5 .. 5e-5
    }
    smoke = families.text_smoke("masked_accuracy")
    base = families.text_base(bert_base, seq_len=512)
    return datasets.select(config, variant, smoke=smoke, base=base)
