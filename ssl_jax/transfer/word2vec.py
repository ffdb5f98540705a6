"""word2vec's evaluation protocols: the cosine neighbours of a few query words, and a frequency-controlled
check that related words lie closer than unrelated ones.

Registered on `Word2Vec` (ssl_jax.transfer.protocols) as "nearest_neighbours" and "word_similarity",
selected by config.eval.protocols or `ssl-jax evaluate --protocol`; the generic kNN / linear protocols
need labelled examples, which a corpus of words has not.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from ssl_jax.methods.word2vec import Word2Vec
from ssl_jax.transfer import protocols

# Words whose neighbours "nearest_neighbours" reports (those outside the vocabulary are listed as
# missing): characters, family, feelings, time, objects of Austen's novels.
QUERY_WORDS = (
    "elizabeth",
    "darcy",
    "emma",
    "sister",
    "mother",
    "happy",
    "letter",
    "monday",
    "morning",
    "carriage",
    "house",
    "said",
)

# Pairs of words whose meanings are related (kinship counterparts, times of day and days, synonyms of
# feeling, things of the same kind, forms of address). `word_similarity` compares each pair's cosine with
# frequency-matched control words.
RELATED_PAIRS = (
    ("mother", "father"),
    ("brother", "sister"),
    ("son", "daughter"),
    ("husband", "wife"),
    ("aunt", "uncle"),
    ("niece", "nephew"),
    ("mr", "mrs"),
    ("sir", "madam"),
    ("he", "she"),
    ("him", "her"),
    ("man", "woman"),
    ("gentleman", "lady"),
    ("boy", "girl"),
    ("morning", "evening"),
    ("day", "night"),
    ("week", "month"),
    ("hour", "minute"),
    ("monday", "tuesday"),
    ("saturday", "sunday"),
    ("happy", "glad"),
    ("pleasure", "delight"),
    ("joy", "happiness"),
    ("love", "affection"),
    ("fear", "afraid"),
    ("carriage", "horses"),
    ("dinner", "supper"),
    ("breakfast", "tea"),
    ("letter", "note"),
    ("write", "read"),
    ("town", "country"),
    ("house", "cottage"),
    ("room", "parlour"),
    ("dance", "ball"),
    ("said", "replied"),
    ("cried", "exclaimed"),
    ("colonel", "captain"),
    ("better", "worse"),
    ("small", "large"),
    ("first", "second"),
    ("two", "three"),
)


def _unit_rows(embeddings: np.ndarray) -> np.ndarray:
    return embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)


def nearest_neighbours(
    embeddings: np.ndarray, vocab: Any, queries: tuple[str, ...], *, k: int = 8
) -> dict[str, Any]:
    """For each query in the vocabulary, its k nearest words by cosine similarity (itself excluded):
    {"neighbours": {query: [[word, cosine], ...]}, "missing": [queries not in the vocabulary], "k"}."""
    unit = _unit_rows(embeddings)
    found, missing = {}, []
    for query in queries:
        if query not in vocab:
            missing.append(query)
            continue
        q = vocab.index[query]
        sims = unit @ unit[q]
        order = np.argsort(-sims, kind="stable")
        top = order[order != q][:k]
        found[query] = [[vocab.words[i], round(float(sims[i]), 4)] for i in top]
    return {"neighbours": found, "missing": missing, "k": k}


def word_similarity(
    embeddings: np.ndarray,
    vocab: Any,
    pairs: tuple[tuple[str, str], ...],
    *,
    num_controls: int = 50,
) -> dict[str, Any]:
    """Do related words lie closer than unrelated words of the same frequency?

    For each related pair (a, b) with both words in the vocabulary, and in both directions (a -> b and
    b -> a), the related cosine cos(a, b) is compared with cos(a, c) for the `num_controls` control words
    c nearest to b in frequency rank (ids are frequency ranks; a and b themselves excluded). Controlling
    for frequency matters: frequent words crowd together in word2vec spaces, so "closer than a random
    word" would partly measure frequency. Results:
      pair_accuracy: the fraction of (direction, control) comparisons the related word wins
        (0.5 for embeddings that know nothing, e.g. a random initialization; 1.0 at best);
      mean_related_cosine, mean_control_cosine and their difference `gap`;
      pairs_used / pairs_missing: how many of `pairs` were in the vocabulary.
    """
    unit = _unit_rows(embeddings)
    size = len(unit)
    wins, related, control = [], [], []
    used, missing = 0, []
    for a, b in pairs:
        if a not in vocab or b not in vocab:
            missing.append(f"{a}/{b}")
            continue
        used += 1
        for x, y in ((vocab.index[a], vocab.index[b]), (vocab.index[b], vocab.index[a])):
            near = np.argsort(np.abs(np.arange(size) - y), kind="stable")
            controls = [c for c in near if c not in (x, y)][:num_controls]
            rel = float(unit[x] @ unit[y])
            ctl = unit[controls] @ unit[x]
            related.append(rel)
            control.extend(ctl.tolist())
            wins.extend((rel > ctl).tolist())
    if not used:
        raise ValueError("none of the word-similarity pairs is in the vocabulary")
    mean_related, mean_control = float(np.mean(related)), float(np.mean(control))
    return {
        "pair_accuracy": float(np.mean(wins)),
        "mean_related_cosine": mean_related,
        "mean_control_cosine": mean_control,
        "gap": mean_related - mean_control,
        "pairs_used": used,
        "pairs_missing": missing,
        "num_controls": num_controls,
    }


def _embeddings(encoder_variables) -> np.ndarray:
    return np.asarray(jax.device_get(encoder_variables["params"]["input"]), np.float64)


@protocols.register(Word2Vec, "nearest_neighbours")
def nearest_neighbours_protocol(
    config, encoder_variables, *, mesh=None, method: Word2Vec
) -> dict[str, Any]:
    """`nearest_neighbours` of QUERY_WORDS, k = config.eval.neighbours_k (default 8)."""
    del mesh
    k = int(config.eval.get("neighbours_k", 8))
    return nearest_neighbours(_embeddings(encoder_variables), method.vocab, QUERY_WORDS, k=k)


@protocols.register(Word2Vec, "word_similarity")
def word_similarity_protocol(
    config, encoder_variables, *, mesh=None, method: Word2Vec
) -> dict[str, Any]:
    """`word_similarity` of RELATED_PAIRS, config.eval.similarity_controls (default 50) controls."""
    del mesh
    controls = int(config.eval.get("similarity_controls", 50))
    return word_similarity(
        _embeddings(encoder_variables), method.vocab, RELATED_PAIRS, num_controls=controls
    )
