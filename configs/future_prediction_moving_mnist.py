"""Future prediction in feature space (Vondrick et al. 2016) on tfds `moving_mnist` (by name).

Moving MNIST (Srivastava et al. 2015): 10,000 sequences of 20 frames, 64x64x1, two digits bouncing,
no labels, one tfds split ("test"), divided here 90/10 into train/test. Prepare it once in ArrayRecord
format (building needs TensorFlow, training does not):

  pip install 'ssl_jax[tf]' && tfds build moving_mnist --file_format=array_record

phi: a frozen grayscale convolutional encoder from another run, e.g. the Fashion-MNIST SimCLR small CNN
(configs/future_prediction_fashion_mnist.py gives its command), applied to the 64x64 frames at their
own size; f regresses phi(x_{t+1}) from phi(x_{t-1}), phi(x_t) (context 2):

  ssl-jax pretrain --config configs/future_prediction_moving_mnist.py --workdir runs/future_mmnist \
      --config.future.phi_workdir=runs/simclr_fmnist

Evaluation: "future_regression" only (the test MSE of f against copying the last frame's features;
Moving MNIST has no labels for kNN). No run of this config is recorded yet (the dataset is not available
offline here); the Fashion-MNIST clips' numbers are in benchmarks/results/future_prediction.md.
Variants: `:smoke` (8-frame clips, a tiny frozen random phi, three steps).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import default_config


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = default_config.get_config()
    config.method = "future_prediction"
    del config.model["projector"]
    del config["simclr"]
    config.data.name = "tfds_video"
    config.data.tfds_name = "moving_mnist"
    config.data.data_dir = ""  # "": ~/tensorflow_datasets
    config.data.frames_key = "image_sequence"
    config.data.label_key = ""  # no labels
    config.data.train_split = "test[:90%]"
    config.data.test_split = "test[90%:]"
    config.data.num_frames = 20
    config.data.frame_stride = 1
    config.data.clip_start = 0
    config.data.frame_size = 0  # 0: keep 64x64
    config.data.num_classes = 0

    config.future = ml_collections.ConfigDict(
        {
            "phi_workdir": "",
            "phi_step": 0,
            "phi_image_size": 0,
            "train_phi": False,
            "context": 2,
            "offset": 1,
            "residual": True,  # f = phi(x_t) + g(.), g starting at 0 (FuturePrediction)
        }
    )
    config.model.encoder = "small_cnn"
    config.model.encoder_kwargs = {"widths": (32, 64, 128), "strides": (2, 2, 2)}
    config.model.predictor = ml_collections.ConfigDict(
        {"hidden_dim": 512, "num_layers": 2, "use_bn": True}
    )
    config.augment = ml_collections.ConfigDict()

    config.batch_size = 64  # 64 clips = 1,280 frames through phi per step
    config.num_epochs = 20.0
    config.optim = ml_collections.ConfigDict(
        {
            "name": "adamw",
            "learning_rate": 1e-3,
            "lr_scaling": "none",
            "weight_decay": 1e-4,
            "warmup_epochs": 1.0,
            "end_lr": 0.0,
        }
    )
    config.log_every_steps = 50
    config.eval_every_steps = 0
    config.checkpoint_every_steps = 1000
    config.eval.protocols = ("future_regression",)
    config.eval.batch_size = 128

    if variant == "smoke":
        config.data.num_frames = 8
        config.model.encoder_kwargs = {"widths": (8,), "strides": (4,)}
        config.model.predictor.hidden_dim = 32
        config.batch_size = 16
        config.num_steps = 3
        config.log_every_steps = 1
        config.checkpoint_every_steps = 2
    elif variant:
        raise ValueError(f"Unknown variant {variant!r}; valid: smoke.")
    return config
