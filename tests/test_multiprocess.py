"""Two local CPU processes (4 simulated devices each) train like one process with all 8 devices."""

import os
import socket
import subprocess
import sys

import numpy as np

from ssl_jax import reporting, train

from engine_checks import CONFIGS, load


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SMOKE = [
    "--config.data.name=embedded_fashion_mnist",
    "--config.num_steps=4",
    "--config.model.dtype=float32",
    "--config.eval.protocols=('knn',)",
]


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path, n_devices):
    port = _free_port()
    workdir = str(tmp_path / "two")
    env = {
        **os.environ,
        # 4 devices per process; the suite's cheaper compiler settings (tests/conftest.py) kept.
        "XLA_FLAGS": os.environ["XLA_FLAGS"].replace("device_count=8", "device_count=4"),
        "JAX_PLATFORMS": "cpu",
    }
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ssl_jax.cli",
                "pretrain",
                "--config",
                f"{CONFIGS}/simclr_fashion_mnist.py:smoke",
                "--workdir",
                workdir,
                f"--coordinator_address=127.0.0.1:{port}",
                "--num_processes=2",
                f"--process_id={i}",
                *SMOKE,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=400)[0] for p in procs]
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == 0, out
    assert "knn top-1 accuracy" in outs[0] and "knn top-1" not in outs[1]  # process 0 reports

    # The same run in this process, over its 8 devices.
    config = load(
        "simclr_fashion_mnist.py:smoke",
        *[o.removeprefix("--config.") for o in SMOKE],
    )
    one = train.pretrain(config, str(tmp_path / "one"))
    two = {r["step"]: r["loss"] for r in reporting.read_metrics(workdir) if "loss" in r}
    ref = {
        r["step"]: r["loss"] for r in reporting.read_metrics(str(tmp_path / "one")) if "loss" in r
    }
    assert sorted(two) == [1, 2, 3, 4]
    np.testing.assert_allclose(
        [two[s] for s in sorted(two)], [ref[s] for s in sorted(ref)], rtol=1e-5
    )
    import json

    knn_two = json.load(open(os.path.join(workdir, "eval.json")))["knn"]["top1"]
    np.testing.assert_allclose(knn_two, one["knn"]["top1"], atol=1e-3)
