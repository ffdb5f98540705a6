"""Jittable, per-example-random augmentations run on the accelerator inside the jitted train step.

`image` owns the geometric ops, the per-view pipeline (`ViewSpec`, `augment_batch`) and the eval
transform; `photometric` owns the pixel-value ops (colour, blur, solarize). Text noising will live
beside them.
"""

from ssl_jax.augment.image import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    ViewSpec,
    augment_batch,
    augment_image,
    blur_kernel_size,
    horizontal_flip,
    normalize,
    preprocess_eval,
    random_resized_crop,
    sample_crop_box,
)
from ssl_jax.augment.multicrop import dino_view_specs, multicrop_views
from ssl_jax.augment.photometric import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    color_jitter,
    gaussian_blur,
    hsv_to_rgb,
    random_grayscale,
    rgb_to_grayscale,
    rgb_to_hsv,
    solarize,
)
from ssl_jax.augment.text import (
    MaskedTokens,
    NoisedTokens,
    bart_noise,
    bert_mask,
    sentence_end_table,
)

__all__ = [
    "MaskedTokens",
    "NoisedTokens",
    "bart_noise",
    "bert_mask",
    "sentence_end_table",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ViewSpec",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "augment_batch",
    "augment_image",
    "blur_kernel_size",
    "color_jitter",
    "dino_view_specs",
    "gaussian_blur",
    "horizontal_flip",
    "hsv_to_rgb",
    "multicrop_views",
    "normalize",
    "preprocess_eval",
    "random_grayscale",
    "random_resized_crop",
    "rgb_to_grayscale",
    "rgb_to_hsv",
    "sample_crop_box",
    "solarize",
]
