"""Transfer: every evaluation protocol of a pre-trained encoder, and the data access they need.

  probes.py    kNN, linear probe, top-k accuracy and feature extraction on frozen features (pure
               array programs: no config, no files).
  finetune.py  fine-tuning the encoder with a new linear head on all / 10% / 1% of the labels.
  protocols.py the registry of method-specific protocols (registered against a method class).
  text.py      the text protocols: fine-tuning a text model, perplexity, masked accuracy.
  zero_shot.py CLIP's zero-shot classification.
  evaluate.py  from a config and an encoder (or a workdir's checkpoint) to WORKDIR/eval.json: reads
               the splits, runs the protocols selected by name (config.eval.protocols).

`ssl-jax evaluate WORKDIR` is `evaluate.evaluate_workdir`; pre-training's final evaluation is
`evaluate.evaluate_encoder`.
"""
