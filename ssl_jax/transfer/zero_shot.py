"""CLIP's zero-shot classification protocol ("zero_shot"), registered against the clip method: the
test split classified by the nearest class prompt, prompts tokenized as the training captions were.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from ssl_jax import data, parallel
from ssl_jax.data import captions
from ssl_jax.losses._checks import l2_normalize
from ssl_jax.methods import clip, common
from ssl_jax.methods.base import PyTree
from ssl_jax.transfer import probes, protocols


@protocols.register(clip.CLIP, "zero_shot")
def zero_shot(
    config: ml_collections.ConfigDict,
    encoder_variables: dict[str, PyTree],
    *,
    mesh: jax.sharding.Mesh | None = None,
    method: clip.CLIP,
) -> dict[str, Any]:
    """Top-1 (and top-5) accuracy on config.eval.zero_shot_data (default config.data)'s test split
    of nearest-class-prompt classification; class names from config.eval.zero_shot_class_names or
    the source, templates from config.data.templates."""
    data_cfg = config.data
    if config.eval.get("zero_shot_data"):  # another labelled dataset, in data.data_dir by default
        data_cfg = ml_collections.ConfigDict(config.eval.zero_shot_data.to_dict())
        data_cfg.data_dir = data_cfg.get("data_dir") or config.data.get("data_dir", "")
    source = data.get_source(data_cfg, "test")
    class_names = tuple(config.eval.get("zero_shot_class_names") or ()) or getattr(
        source, "class_names", None
    )
    if not class_names:
        raise ValueError(
            f"zero_shot needs class names: {source.name!r} has none; set "
            "--config.eval.zero_shot_class_names."
        )
    templates = tuple(config.data.get("templates") or ()) or captions.TEMPLATES
    # The training captions' tokenizer, so prompts are tokenized as the captions were.
    train_source = data.get_source(config.data, "train")
    tokenizer = getattr(train_source, "tokenizer", None) or captions.make_tokenizer(config.data)
    if tokenizer.vocab_size > clip.text_vocab_size(config):
        raise ValueError(
            f"The captions' tokenizer has {tokenizer.vocab_size} ids, more than the text tower's "
            f"{clip.text_vocab_size(config)} (config.model.text.vocab_size)."
        )
    prompts = captions.class_prompt_tokens(
        class_names, templates, tokenizer, int(config.data.text_len)
    )
    classes = method.class_embeddings(encoder_variables, prompts)

    model, variables = method.model(None), method.model_variables(encoder_variables)

    def image_embeddings(variables, images):
        x = common.eval_images(config, images)
        z = model.apply(variables, x, train=False, method=clip.CLIPModel.embed_images)
        return l2_normalize(z)

    n = 1 if mesh is None else parallel.num_shards(mesh)
    batch_size = max(n, (int(config.eval.batch_size) // n) * n)
    features, labels = probes.extract_features(
        image_embeddings,
        variables,
        data.eval_batches(
            source,
            batch_size,
            process_index=jax.process_index(),
            process_count=jax.process_count(),
            keys=("image", "label"),
        ),
        mesh=mesh,
    )
    features = parallel.gather_processes(features)
    labels = parallel.gather_processes(labels)
    logits = jnp.asarray(features) @ classes.T
    out = {
        "top1": float(probes.accuracy(logits, labels, k=1)),
        "num_classes": len(class_names),
        "num_templates": len(templates),
    }
    if len(class_names) >= 5:
        out["top5"] = float(probes.accuracy(logits, labels, k=5))
    return out
