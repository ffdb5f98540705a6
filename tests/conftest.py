"""Test session set-up: 8 simulated CPU devices, so data-parallel code is exercised without a GPU.

The flag must be set before jax initialises its backends, hence at import time here.
"""

import os

os.environ.setdefault("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " --xla_force_host_platform_device_count=8"
# The suite is dominated by compiling many small programs on 2 cores; LLVM's expensive passes cost more
# than they save there (about a quarter of the CPU time). Results do not depend on them.
if "xla_backend_optimization_level" not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += (
        " --xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
    )
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


@pytest.fixture(scope="session")
def shared_data_dir():
    path = os.path.abspath(SHARED_DATA)
    if not os.path.isdir(path):
        pytest.skip("../shared/data is not beside this checkout")
    return path


@pytest.fixture(scope="session")
def n_devices():
    assert jax.device_count() == 8, jax.devices()
    return 8
