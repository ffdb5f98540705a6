"""word2vec skip-gram with negative sampling (Mikolov et al. 2013) on Jane Austen's six novels.

Data: a directory of UTF-8 .txt files (one document each), e.g. the six novels of the Debian package
`r-cran-janeaustenr` as plain text; vocabulary from the train split (first 90% of each file), words seen
at least 5 times. Subsampling threshold t = 1e-4 (Mikolov et al. suggest 1e-5 for billion-word corpora;
at Austen's ~660k words, 1e-5 would keep only 17% of the tokens, 1e-4 keeps 41%), window 5 (dynamic),
5 negatives from unigram^0.75.

  ssl-jax pretrain --config configs/word2vec_austen.py --workdir runs/word2vec_austen \
      --config.data.data_dir=PATH/TO/austen

Evaluation: nearest neighbours of a fixed query list and a frequency-controlled word-similarity check
(ssl_jax.methods.word2vec).
Expected result: see benchmarks/results/word2vec_austen.md.
Variants: `:smoke` (a few steps with tiny vectors, for tests; point data_dir at any small text
folder).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = datasets.base("word2vec", batch_size=1024, num_epochs=2.0, log_every_steps=100)
    # batch_size counts center words (~1 kept pair each: subsampling, dynamic window).
    config.data = ml_collections.ConfigDict(
        {
            "name": "skipgram_text",
            "data_dir": "",  # required: a directory of .txt files
            "window": 5,
            "min_count": 5,
            "max_vocab": 0,  # 0: no cap
            "test_fraction": 0.1,
        }
    )
    config.word2vec = ml_collections.ConfigDict(
        {"embedding_dim": 100, "num_negatives": 5, "subsample": 1e-4, "noise_power": 0.75}
    )
    config.augment = ml_collections.ConfigDict()
    config.optim = ml_collections.ConfigDict(
        {
            "name": "adamw",
            "learning_rate": 3e-2,  # 3e-3 left the vectors in the frequency-only phase (results)
            "lr_scaling": "none",
            "weight_decay": 0.0,
            "warmup_steps": 100,
            "end_lr": 0.0,
        }
    )
    # eval_every_steps stays 0: the kNN curve needs labelled examples.
    config.eval.protocols = ("nearest_neighbours", "word_similarity")
    config.eval.neighbours_k = 8
    config.eval.similarity_controls = 50
    smoke = {
        "data.min_count": 2,
        "data.window": 2,
        "word2vec.embedding_dim": 8,
        "word2vec.num_negatives": 2,
        "word2vec.subsample": 1e-2,
        "eval.similarity_controls": 3,
    }
    smoke = datasets.smoke(smoke, encoder=None, dtype=None, protocols=None, max_train_examples=None)
    return datasets.select(config, variant, smoke=smoke)
