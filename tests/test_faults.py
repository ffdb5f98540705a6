"""Faults and bad inputs (issue #9): SIGKILL at random points, partial and corrupt checkpoints, a
checkpoint of another architecture, the disk filling during a save, malformed images, no pickle.

Every fault is checked for the same two things: a clear error (or an exact resume), and nothing lost or
overwritten. tests/FAULTS.md lists each fault tried, here and in the other test files, with its test.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import hashlib
import os
import pickle
import re
import shutil
import subprocess
import sys
import time
import types

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from etils import epath
from PIL import Image

from ssl_jax import checkpoint, cli, data, optim, reporting, train
from ssl_jax.methods import get_method

from engine_checks import CONFIGS, ROOT, load

N = 10  # steps of every run here
SMOKE = "simclr_fashion_mnist.py:smoke"
RUN = (
    "data.name=embedded_fashion_mnist",
    f"num_steps={N}",
    "checkpoint_every_steps=1",
    "log_every_steps=1",
    "eval.protocols=()",
)
KEEP_ALL = f"keep_checkpoints={N}"


def run_config(*overrides: str):
    return load(SMOKE, *RUN, *overrides)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run that keeps every step's checkpoint. Its programs land in the compilation
    cache first, so the killed subprocesses below load them instead of compiling."""
    workdir = str(tmp_path_factory.mktemp("reference"))
    assert train.pretrain(run_config(KEEP_ALL), workdir) == {"step": N}
    return workdir


def saved_state(workdir: str, step: int = N) -> dict:
    """The whole train state of a step as numpy, read with Orbax's own handler (no target)."""
    path = os.path.join(checkpoint.checkpoint_dir(workdir), str(step), checkpoint.STATE)
    with ocp.StandardCheckpointer() as reader:
        return jax.tree.map(np.asarray, reader.restore(path))


def assert_same_run(workdir: str, reference: str, step: int = N) -> None:
    """Bit-identical state at `step` (parameters, BN statistics, optimizer moments, rng) and losses
    up to it."""
    jax.tree.map(
        np.testing.assert_array_equal, saved_state(workdir, step), saved_state(reference, step)
    )
    assert losses(workdir) == [(s, loss) for s, loss in losses(reference) if s <= step]


def resume_one_step(workdir: str, reference: str, step: int) -> None:
    """Runs the same command again, stopping (as if preempted) once `step` is saved: cheaper than
    running to the end, and enough to show where it resumed from and that it goes on exactly."""
    stopped = train.pretrain(run_config(KEEP_ALL), workdir, stop_at_step=step)
    assert stopped == {"step": step, "stopped": True}
    assert_same_run(workdir, reference, step)


def losses(workdir: str) -> list[tuple[int, float]]:
    """(step, loss) in the order logged: a step logged twice (by a killed run and again after its
    resume) would show."""
    return [(r["step"], r["loss"]) for r in reporting.read_metrics(workdir) if "loss" in r]


def fingerprint(directory: str) -> dict[str, str]:
    """{relative path: sha256} of every file under `directory`: proof that nothing changed."""
    out = {}
    for dirpath, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
    return out


def partial_dirs(workdir: str) -> list[str]:
    return sorted(d for d in os.listdir(checkpoint.checkpoint_dir(workdir)) if "tmp" in d)


# --- Tree comparison: the reusable check for restoring into another architecture. ---


def test_check_tree_matches_names_every_differing_path_and_both_shapes():
    model = {"params": {"conv": {"kernel": np.zeros((3, 3, 1, 8))}, "dense": {"bias": np.zeros(4)}}}
    checkpoint.check_tree_matches(
        model, jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), model)
    )
    found = {"params": {"conv": {"kernel": np.zeros((3, 3, 1, 16))}, "head": {"bias": np.zeros(4)}}}
    with pytest.raises(checkpoint.CheckpointMismatchError) as info:
        checkpoint.check_tree_matches(model, found, what="The encoder in X")
    message = str(info.value)
    assert message.startswith("The encoder in X does not fit this model")
    assert "params/conv/kernel: checkpoint (3, 3, 1, 16) vs model (3, 3, 1, 8)" in message
    assert "params/dense/bias: in the model (4,), not in the checkpoint" in message
    assert "params/head/bias: in the checkpoint (4,), not in the model" in message
    assert isinstance(info.value, ValueError)  # the CLI reports it as an error, not a traceback


def test_check_tree_matches_reads_a_dataclass_state_and_its_saved_dict_alike(reference):
    """The train state is a dataclass of tuples (optax); Orbax metadata is nested dicts."""
    config = run_config(KEEP_ALL)
    state = abstract_state(config)
    saved = saved_state(reference)
    checkpoint.check_tree_matches(state, saved)
    assert checkpoint.tree_shapes(state) == checkpoint.tree_shapes(saved)


def abstract_state(config) -> train.TrainState:
    """The state `pretrain` builds for `config`, as shapes only (nothing compiled)."""
    source = data.get_source(config.data, "train")
    steps_per_epoch, num_steps = train.total_steps(config, len(source))
    method = get_method(config, num_steps=num_steps, steps_per_epoch=steps_per_epoch)
    tx, _ = optim.make_optimizer(
        train.optimizer_config(config, steps_per_epoch, num_steps), num_steps
    )
    shape = data.example_shape(source, method.batch_keys[0])
    return jax.eval_shape(
        lambda rng: train.create_train_state(method, tx, rng, shape), jax.random.PRNGKey(0)
    )


# --- Preemption: SIGKILL at random points. ---


def _child(workdir: str, log) -> subprocess.Popen:
    argv = [sys.executable, "-m", "ssl_jax.cli", "pretrain", "--config", f"{CONFIGS}/{SMOKE}"]
    argv += ["--workdir", workdir, *(f"--config.{o}" for o in RUN)]
    env = {
        **os.environ,  # the 8 simulated devices, XLA flags and compilation cache of this session
        "PYTHONPATH": ROOT,
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def _logged_lines(workdir: str) -> int:
    path = os.path.join(workdir, reporting.METRICS_FILE)
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return sum(1 for line in f if line.endswith("\n"))


def _kill_after_new_steps(proc, workdir: str, resumed: int, steps: int, delay: float) -> bool:
    """SIGKILLs `proc` `delay` seconds after it has logged `steps` steps past `resumed`, the step it
    resumes from, so that the kill lands in the step loop, around a checkpoint save. Returns whether
    it was still running."""

    def wait_for(condition):
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline and not condition():
            time.sleep(0.002)

    # The killed run's lines after its last checkpoint are dropped first (seconds before a new step).
    wait_for(lambda: _logged_lines(workdir) <= resumed)
    wait_for(lambda: _logged_lines(workdir) >= min(resumed + steps, N - 1))
    time.sleep(delay)
    running = proc.poll() is None
    proc.kill()
    proc.wait()
    return running


def test_sigkill_at_random_points_then_resume_reaches_the_uninterrupted_state(reference, tmp_path):
    """One run is SIGKILLed three times at seeded random points (after 2 or 3 more logged steps,
    then a random fraction of a step), each time started again from its workdir, then run to the
    end: its final state and every logged loss are bit-identical to the uninterrupted run's, and no
    unfinished save (a *.orbax-checkpoint-tmp* directory) is ever taken for a checkpoint."""
    rng = np.random.default_rng(9)
    workdir = str(tmp_path / "run")
    resumed_from = [0]
    for trial in range(3):
        steps, delay = int(rng.integers(2, 4)), float(rng.uniform(0.0, 0.03))
        with open(tmp_path / f"trial{trial}.log", "w") as log:
            proc = _child(workdir, log)
            was_running = _kill_after_new_steps(proc, workdir, resumed_from[-1], steps, delay)
        log_text = (tmp_path / f"trial{trial}.log").read_text()
        assert was_running and proc.returncode == -9, f"trial {trial} ended by itself:\n{log_text}"

        ckpt = checkpoint.Checkpointer(workdir)
        committed, latest = ckpt.all_steps(), ckpt.latest_step()
        ckpt.close()
        assert latest == (max(committed) if committed else None)
        for name in partial_dirs(workdir):  # what the kill interrupted, if it hit a save
            assert int(name.split(".")[0]) not in committed, name
        resumed_from.append(latest or 0)

    # A save killed half-way through a later step: a copy of the latest checkpoint under that
    # step's temporary name, with its array files cut short. It is not a checkpoint.
    latest = resumed_from[-1]
    if latest:
        fake = os.path.join(checkpoint.checkpoint_dir(workdir), f"{N}.orbax-checkpoint-tmp")
        shutil.rmtree(fake, ignore_errors=True)
        shutil.copytree(os.path.join(checkpoint.checkpoint_dir(workdir), str(latest)), fake)
        _truncate(fake)
        ckpt = checkpoint.Checkpointer(workdir)
        assert ckpt.latest_step() == latest and N not in ckpt.all_steps()
        ckpt.close()

    assert train.pretrain(run_config(), workdir) == {"step": N}
    assert_same_run(workdir, reference)
    # The seeded kill points stopped the run part-way, after a checkpoint, at least twice.
    assert sum(0 < step < N for step in resumed_from) >= 2, resumed_from


def _files(directory: str) -> list[str]:
    return [os.path.join(d, f) for d, _, files in os.walk(directory) for f in files]


# --- A corrupt checkpoint: a clear error naming it; nothing deleted; moving it aside resumes. ---


def _array_files(step_dir: str, item: str) -> list[str]:
    """The TensorStore data files of an item (under `d/` directories; the rest is metadata)."""
    files = _files(os.path.join(step_dir, item))
    return [f for f in files if os.path.basename(os.path.dirname(f)) == "d"]


def _truncate(step_dir, item=checkpoint.STATE):
    for path in _array_files(step_dir, item):
        os.truncate(path, os.path.getsize(path) // 2)


def _flip_one_byte(step_dir):
    for path in _array_files(step_dir, checkpoint.STATE):
        with open(path, "r+b") as f:
            f.seek(os.path.getsize(path) // 2)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0xFF]))


def _delete_metadata(step_dir):
    os.remove(os.path.join(step_dir, checkpoint.STATE, "_METADATA"))


def _garbage_data_position(step_dir):
    for path in _files(os.path.join(step_dir, checkpoint.DATA)):
        with open(path, "w") as f:
            f.write('{"step": ')


DAMAGES = (_truncate, _flip_one_byte, _delete_metadata, _garbage_data_position)


def assert_one_cause_line(message: str) -> None:
    """The message of an unreadable checkpoint: what to do, then the underlying error on one short
    line, without the TensorStore spec that Orbax's and TensorStore's errors carry."""
    lines = message.splitlines()
    assert len(lines) == 2 and lines[1].startswith("  cause: "), message
    assert (
        len(lines[1]) <= 420
        and "TensorStore(" not in message
        and "tensorstore_spec" not in lines[1]
    )


def test_corrupt_checkpoints_are_clear_errors_and_moving_them_aside_resumes(reference, tmp_path):
    """The last four checkpoints are damaged, each its own way (array files truncated, one byte
    flipped, tree metadata deleted, the data position garbled). Each run refuses the newest, naming it
    and changing nothing; doing what the message says (move it aside) reaches the next; the last run
    resumes from the newest good step and goes on exactly as the uninterrupted run."""
    workdir = str(tmp_path / "run")
    shutil.copytree(reference, workdir)
    ckpt_dir = checkpoint.checkpoint_dir(workdir)
    for i, damage in enumerate(DAMAGES):
        damage(os.path.join(ckpt_dir, str(N - i)))
    for i, damage in enumerate(DAMAGES):
        step = N - i
        before = fingerprint(workdir)
        with pytest.raises(checkpoint.CorruptCheckpointError) as info:
            train.pretrain(run_config(KEEP_ALL), workdir)
        message = str(info.value)
        assert f"The checkpoint {ckpt_dir}/{step} cannot be read" in message, damage.__name__
        assert f"then uses step {step - 1}" in message and "--overwrite" in message
        assert_one_cause_line(message)
        assert fingerprint(workdir) == before, damage.__name__  # nothing deleted or rewritten
        command = re.search(r"`mv (\S+) (\S+)`", message)
        os.rename(command.group(1), command.group(2))
    resume_one_step(workdir, reference, N - len(DAMAGES) + 1)
    assert sorted(d for d in os.listdir(workdir) if d.startswith("corrupt-")) == sorted(
        f"corrupt-checkpoint-{N - i}" for i in range(len(DAMAGES))
    )  # the broken steps are kept for inspection


def test_corrupt_encoder_is_a_clear_error_in_evaluate(reference, tmp_path, capsys):
    workdir = str(tmp_path / "run")
    shutil.copytree(reference, workdir)
    _truncate(os.path.join(checkpoint.checkpoint_dir(workdir), str(N)), checkpoint.ENCODER)
    assert cli.main(["evaluate", "--workdir", workdir, "--protocol", "knn"]) == 2
    err = capsys.readouterr().err
    assert f"The checkpoint {checkpoint.checkpoint_dir(workdir)}/{N} cannot be read" in err
    assert_one_cause_line(err.rstrip("\n"))


# Left running, each read abandoned by the failed restore would print a traceback at exit (an
# unraisable exception in a test).
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_a_read_failing_while_others_are_in_flight_is_all_that_is_reported(
    reference, monkeypatch, capfd
):
    """Orbax reads a checkpoint's arrays concurrently, and used to abandon the others mid-read when
    one failed: a traceback followed the error for each read then in flight ("Exception ignored in:
    <coroutine object _read_array_index_and_device_put>" with a 60-line TensorStore spec, "Task
    exception was never retrieved", "Event loop is closed"), none to 26 of them in trials of a
    truncated checkpoint. Here the first read fails at once while every other is still reading: the
    error, with its cause on one line, is all that is reported, and no read is left suspended."""
    from orbax.checkpoint._src.serialization import serialization

    real_read = serialization._read_shard
    started = []

    async def read(*args, **kwargs):
        started.append(None)
        if len(started) == 1:
            raise ValueError("DATA_LOSS: Error reading the first array")
        await asyncio.sleep(0.2)  # still reading when the first one fails
        return await real_read(*args, **kwargs)

    monkeypatch.setattr(serialization, "_read_shard", read)
    target = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), abstract_state(run_config()))
    ckpt = checkpoint.Checkpointer(reference)
    with pytest.raises(checkpoint.CorruptCheckpointError) as info:
        ckpt.restore(N, target)
    ckpt.close()
    assert len(started) > 1  # other reads were under way when the first failed
    lines = str(info.value).splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"The checkpoint {reference}/checkpoints/{N}")
    assert lines[1] == "  cause: ValueError: DATA_LOSS: Error reading the first array"
    gc.collect()
    reads = (read.__code__, serialization._read_array_index_and_device_put.__code__)
    suspended = [
        o
        for o in gc.get_objects()
        if type(o) is types.CoroutineType and o.cr_code in reads and o.cr_frame is not None
    ]
    assert not suspended
    assert capfd.readouterr().err == ""


# --- A checkpoint of another architecture. ---


def test_checkpoint_of_another_architecture_names_the_parameters_and_both_shapes(
    reference, tmp_path
):
    """The run's checkpoints are restored into a wider encoder (its config.json gone, as when
    checkpoints are copied, or the code's defaults changed): refused before any array is read."""
    workdir = str(tmp_path / "run")
    shutil.copytree(reference, workdir)
    os.remove(os.path.join(workdir, "config.json"))
    config = run_config(KEEP_ALL)
    wider = run_config(KEEP_ALL, "model.encoder_kwargs={'widths': (8, 32), 'strides': (2, 2)}")
    state, wider_state = abstract_state(config), abstract_state(wider)
    old, new = (checkpoint.tree_shapes(s.params) for s in (state, wider_state))
    changed = sorted(p for p in old if old[p] != new[p])
    assert changed  # the test means something only if some parameter changed shape
    before = fingerprint(checkpoint.checkpoint_dir(workdir))
    with pytest.raises(checkpoint.CheckpointMismatchError) as info:
        train.pretrain(wider, workdir)
    message = str(info.value)
    assert f"{checkpoint.checkpoint_dir(workdir)}/{N} does not fit this model" in message
    for path in changed:
        assert f"params/{path}: checkpoint {old[path]} vs model {new[path]}" in message
    assert fingerprint(checkpoint.checkpoint_dir(workdir)) == before

    # `ssl-jax evaluate` / fine-tuning: the saved encoder against the encoder a config builds.
    expected = get_method(wider).export_encoder(wider_state)
    with pytest.raises(checkpoint.CheckpointMismatchError, match="The encoder in .* does not fit"):
        checkpoint.load_encoder(workdir, expected=expected)
    encoder, step = checkpoint.load_encoder(
        workdir, expected=get_method(config).export_encoder(state)
    )
    assert step == N and checkpoint.tree_shapes(encoder) == checkpoint.tree_shapes(
        get_method(config).export_encoder(state)
    )


def test_evaluate_with_an_architecture_override_names_the_parameters(reference, tmp_path, capsys):
    """`ssl-jax evaluate --config.model...` that changes the encoder is refused before any array
    is read, naming the parameters, instead of failing inside the network with one shape."""
    workdir = str(tmp_path / "run")
    shutil.copytree(reference, workdir)
    wider = "--config.model.encoder_kwargs={'widths': (8, 32), 'strides': (2, 2)}"
    assert cli.main(["evaluate", "--workdir", workdir, "--protocol", "knn", wider]) == 2
    err = capsys.readouterr().err
    assert f"The encoder in {checkpoint.checkpoint_dir(workdir)}/{N} does not fit" in err
    assert "params/conv1/kernel: checkpoint" in err


def test_a_checkpoint_saved_on_8_devices_loads_on_1(reference, tmp_path):
    """Evaluation and export read the encoder whole, whatever mesh wrote it: a run trained on 8
    devices (this process) is read by a process that has one."""
    out = str(tmp_path / "encoder.npz")
    script = (
        "import sys, jax, numpy as np\n"
        "from ssl_jax import checkpoint\n"
        "assert jax.device_count() == 1, jax.devices()\n"
        "encoder, _ = checkpoint.load_encoder(sys.argv[1])\n"
        "leaves = jax.tree_util.tree_leaves_with_path(encoder)\n"
        "np.savez(sys.argv[2], **{jax.tree_util.keystr(p): x for p, x in leaves})\n"
    )
    flags = " ".join(f for f in os.environ["XLA_FLAGS"].split() if "device_count" not in f)
    env = {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, "-c", script, reference, out],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    here, _ = checkpoint.load_encoder(reference)
    there = np.load(out)
    leaves = jax.tree_util.tree_leaves_with_path(here)
    assert sorted(there.files) == sorted(jax.tree_util.keystr(p) for p, _ in leaves)
    for path, x in leaves:
        np.testing.assert_array_equal(there[jax.tree_util.keystr(path)], x)


# --- The disk filling during a save. ---


# Orbax's background save threads report the failure to an event loop that is already closed.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_disk_full_during_a_save_stops_with_the_last_good_step_and_resumes(
    reference, tmp_path, monkeypatch
):
    """Every file Orbax writes from Python (step and tree metadata, the JSON data position, the commit
    marker) fails with ENOSPC from the save of step `full` on, as on a full disk."""
    full = 3
    writer_class = type(epath.Path(str(tmp_path)))  # etils' local path, which Orbax writes with
    for name in ("write_text", "write_bytes"):
        original = getattr(writer_class, name)

        def no_space(self, *args, _original=original, **kwargs):
            step = re.search(r"/(\d+)\.orbax-checkpoint-tmp", str(self))
            if step and int(step.group(1)) >= full:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(writer_class, name, no_space)
    workdir = str(tmp_path / "run")
    with pytest.raises(checkpoint.CheckpointWriteError) as info:
        train.pretrain(run_config(KEEP_ALL), workdir)
    message = str(info.value)
    assert info.value.errno == errno.ENOSPC and isinstance(info.value, OSError)
    assert f"Could not write the checkpoint of step {full}" in message
    assert "the disk is full" in message
    assert f"The last good checkpoint is step {full - 1}" in message
    assert partial_dirs(workdir) == [f"{full}.orbax-checkpoint-tmp"]  # never taken for a checkpoint
    ckpt = checkpoint.Checkpointer(workdir)
    assert ckpt.latest_step() == full - 1
    ckpt.close()
    jax.tree.map(
        np.testing.assert_array_equal,
        saved_state(workdir, full - 1),
        saved_state(reference, full - 1),
    )

    monkeypatch.undo()  # space freed: the same command resumes from the last good step
    resume_one_step(workdir, reference, full)


# --- Loading never executes code. ---


def test_no_module_of_ssl_jax_can_unpickle():
    pattern = re.compile(
        r"^\s*(import|from)\s+(pickle|cPickle|_pickle|dill|cloudpickle|joblib|shelve|marshal)\b"
        r"|allow_pickle\s*=\s*True|torch\.load\(",
        re.MULTILINE,
    )
    found = []
    for path in _files(os.path.join(ROOT, "ssl_jax")):
        if path.endswith(".py"):
            with open(path) as f:
                found += [f"{path}: {m.group(0).strip()}" for m in pattern.finditer(f.read())]
    assert not found, found


class _Planted:
    """Unpickling this creates a directory: the proof that a load executed code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_restoring_a_checkpoint_never_unpickles(reference, tmp_path, monkeypatch):
    workdir = str(tmp_path / "run")
    shutil.copytree(reference, workdir)
    step_dir = os.path.join(checkpoint.checkpoint_dir(workdir), str(N))
    marker = str(tmp_path / "code-was-executed")
    payload = pickle.dumps(_Planted(marker))
    for item in (checkpoint.STATE, checkpoint.ENCODER):
        with open(os.path.join(step_dir, item, "state.pkl"), "wb") as f:
            f.write(payload)

    def refuse(*args, **kwargs):
        raise AssertionError("a checkpoint load called pickle")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    encoder, _ = checkpoint.load_encoder(workdir)
    config = run_config(KEEP_ALL)
    target = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), abstract_state(config))
    ckpt = checkpoint.Checkpointer(workdir)
    state, position = ckpt.restore(N, target)
    ckpt.close()
    assert position["step"] == N and jax.tree.leaves(state) and jax.tree.leaves(encoder)
    # A pickle in place of the JSON data position is a corrupt checkpoint, not a program.
    for path in _files(os.path.join(step_dir, checkpoint.DATA)):
        with open(path, "wb") as f:
            f.write(payload)
    ckpt = checkpoint.Checkpointer(workdir)
    with pytest.raises(checkpoint.CorruptCheckpointError):
        ckpt.restore(N, target)
    ckpt.close()
    assert not os.path.exists(marker)


# --- Images of the wrong shape or dtype. ---


def _npz(path, images):
    np.savez(path, train_images=images, train_labels=np.zeros(len(images), np.int32))
    return str(path)


@pytest.mark.parametrize(
    "images, message",
    [
        (np.zeros((32, 28, 28, 1), np.float32), "got dtype float32"),
        (np.zeros((32, 784), np.uint8), "got shape (32, 784)"),
        (np.zeros((32, 28, 28, 4), np.uint8), "got shape (32, 28, 28, 4)"),
    ],
)
def test_npz_images_of_the_wrong_dtype_or_shape_are_a_clear_error(
    images, message, tmp_path, capsys
):
    path = _npz(tmp_path / "bad.npz", images)
    argv = ["pretrain", "--config", f"{CONFIGS}/{SMOKE}", "--workdir", str(tmp_path / "run")]
    assert cli.main([*argv, "--config.data.name=npz", f"--config.data.path={path}"]) == 2
    assert message in capsys.readouterr().err


def _image_folder(root, sizes):
    for i, size in enumerate(sizes):
        os.makedirs(root / f"class{i % 2}", exist_ok=True)
        Image.new("L", size).save(root / f"class{i % 2}" / f"{i}.png")
    return root


def test_image_folder_with_mixed_sizes_names_the_odd_image(tmp_path):
    root = _image_folder(tmp_path / "images", [(8, 8), (8, 8), (12, 8)])
    source = data.ImageFolderSource(str(root))
    odd = next(i for i, p in enumerate(source.paths) if Image.open(p).size != (8, 8))
    with pytest.raises(ValueError) as info:
        source.get(np.arange(len(source)))
    assert source.paths[odd] in str(info.value) and "image_size" in str(info.value)
    assert data.ImageFolderSource(str(root), image_size=8).get(np.arange(3))["image"].shape == (
        3,
        8,
        8,
        1,
    )


def test_undecodable_image_names_the_file(tmp_path):
    root = _image_folder(tmp_path / "images", [(8, 8), (8, 8)])
    broken = root / "class1" / "broken.png"
    good = (root / "class0" / "0.png").read_bytes()
    broken.write_bytes(good[: len(good) // 2])  # a download cut short
    source = data.ImageFolderSource(str(root))
    with pytest.raises(ValueError, match=rf"cannot decode the image {re.escape(str(broken))}"):
        source.get(np.arange(len(source)))


def test_the_faults_table_names_only_tests_that_exist():
    """tests/FAULTS.md stays true: every `file.py::test_name` it cites is defined in that file."""
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "FAULTS.md")) as f:
        cited = set(re.findall(r"`(test_\w+\.py)::(test_\w+)", f.read()))
    assert len(cited) > 20
    missing = []
    for filename, name in sorted(cited):
        with open(os.path.join(here, filename)) as f:
            if not re.search(rf"^def {name}\(", f.read(), re.MULTILINE):
                missing.append(f"{filename}::{name}")
    assert not missing, missing
