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

import tempfile  # noqa: E402

# While tensorflow_datasets imports (under etils' lazy imports), a garbage-collected multiprocessing
# semaphore of an earlier test's grain workers can fail its finalizer (a relative import the lazy
# importer refuses). pytest reports that as a warning, but its hook imports tracemalloc on first use,
# which inside the same import gets a LazyModule and raises, failing whichever test was running
# (about one run in three of tests/test_pipeline.py). Imported here first, the hook just warns.
import tracemalloc  # noqa: E402, F401

import jax  # noqa: E402
import pytest  # noqa: E402

# Many tests compile the same programs (a smoke config's train step, the kNN and probe programs): a
# compilation cache shared by the whole session, subprocesses included, compiles each once.
_CACHE = os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "ssl_jax_test_xla_cache")
)
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

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
