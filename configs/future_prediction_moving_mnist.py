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
Moving MNIST has no labels for kNN).
Expected result: none recorded yet (the dataset is not available offline here); the Fashion-MNIST
clips' numbers are in benchmarks/results/future_prediction.md.
Variants: `:smoke` (8-frame clips, a tiny frozen random phi, three steps).
"""

from __future__ import annotations

import ml_collections

from ssl_jax import config_util

datasets = config_util.import_sibling(__file__, "_datasets")
families = config_util.import_sibling(__file__, "_families")


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    config = datasets.base("future_prediction", batch_size=64, num_epochs=20.0)
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
    # A batch of 64 clips = 1,280 frames through phi per step.
    families.future_prediction(config, context=2, warmup_epochs=1.0)
    config.eval.protocols = ("future_regression",)
    config.eval.batch_size = 128
    smoke = {
        "data.num_frames": 8,
        "model.encoder_kwargs": {"widths": (8,), "strides": (4,)},
        "model.predictor.hidden_dim": 32,
    }
    smoke = datasets.smoke(smoke, encoder=None, protocols=None, max_train_examples=None)
    return datasets.select(config, variant, smoke=smoke)
