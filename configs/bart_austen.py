"""BART (denoising: sentence permutation + text infilling) on Jane Austen's six novels; downstream:
which novel a passage comes from.

The paper's best noising (Lewis et al. 2020, Sec. 5.1): every row's sentences shuffled, then 30% of its
tokens removed in spans of Poisson(3) length, one [MASK] per span (0-length spans insert one). An
encoder-decoder (config.model sizes each stack) reconstructs the original row. Data: a directory of the
six novels as UTF-8 .txt files (the label of a passage is its file), e.g. ../shared/data/austen beside
this checkout; contiguous-block splits and a 2048-id BPE trained on the train split (ssl_jax.data.text).

  ssl-jax pretrain --config configs/bart_austen.py --workdir runs/bart_austen \
      --config.data.data_dir=../shared/data/austen

Reports the validation reconstruction accuracy on the infilled tokens ("masked_accuracy"), kNN / linear
probe on mean-pooled encoder features, and novel classification fine-tuned from the pre-trained encoder
("finetune") and from random initialisation ("finetune_scratch").
Expected result: see benchmarks/results/austen.md (the `:cpu` variant), made by
benchmarks/text_downstream.py.

Variants: `:cpu` (the measured CPU run: 600 steps), `:smoke` (a tiny model, 3 steps, for tests), `:base`
(BART-base: 6 + 6 layers x 768, 12 heads, seq 1024, 50265 ids, bfloat16, with the paper's large-scale
batch and length, Sec. 5: 8000 rows, 500k steps; its learning rate, which the paper does not state,
is this project's choice; accelerator-sized).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util
from ssl_jax.methods import text_common

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = text_common.base_config("bart")
    config.data.data_dir = "data/austen"  # set --config.data.data_dir to where the .txt files are
    config.bart = ml_collections.ConfigDict(
        dict(mask_rate=0.3, poisson_lambda=3.0, permute_sentences=True)
    )
    config.eval.protocols = ("masked_accuracy", "knn", "linear", "finetune", "finetune_scratch")
    cpu = {"num_steps": 600, "optim.warmup_steps": 60, "checkpoint_every_steps": 600}
    bart_base = {
        "model.num_layers": 6,  # per stack: 6 encoder + 6 decoder layers
        "data.vocab_size": 50265,
        "batch_size": 8000,  # Sec. 5: batch 8000, 500k steps
        "num_steps": 500_000,
        "optim.learning_rate": 4e-4,  # not stated in the paper
        "optim.b2": 0.98,
        "optim.weight_decay": 0.01,
        "optim.warmup_steps": 10_000,
        "eval.finetune_learning_rate": 2e-5,
    }
    return datasets.select(
        config,
        variant,
        cpu=datasets.changes(cpu),
        smoke=families.text_smoke("masked_accuracy"),
        base=families.text_base(bart_base, seq_len=1024),
    )
