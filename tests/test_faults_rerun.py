"""Stopping and running again (issue #21): SIGTERM during the last step or the final evaluation, a
finished workdir run again, a step logged twice. Each ends with the state saved and every step once in
metrics.jsonl.

tests/FAULTS.md lists each fault with its test.
"""

from __future__ import annotations

import json
import os
import signal

import pytest

from ssl_jax import checkpoint, cli, reporting, train
from ssl_jax.transfer import evaluate

from engine_checks import CONFIGS

N = 2  # steps of the run here
SMOKE = "simclr_fashion_mnist.py:smoke"
ARGS = (
    "--config.data.name=embedded_fashion_mnist",
    f"--config.num_steps={N}",
    f"--config.checkpoint_every_steps={N}",
    "--config.log_every_steps=1",
    "--config.eval_every_steps=0",
    "--config.eval.protocols=('knn',)",
)


def pretrain(workdir: str) -> int:
    """`ssl-jax pretrain` of the tiny run, in this process; its exit code."""
    return cli.main(["pretrain", "--config", f"{CONFIGS}/{SMOKE}", "--workdir", workdir, *ARGS])


def latest_step(workdir: str) -> int | None:
    ckpt = checkpoint.Checkpointer(workdir)
    step = ckpt.latest_step()
    ckpt.close()
    return step


def logged_steps(workdir: str) -> list[int]:
    return [r["step"] for r in reporting.read_metrics(workdir)]


def test_sigterm_at_start_up_in_the_last_step_or_the_final_evaluation_exits_143_then_resumes(
    tmp_path, monkeypatch, capsys
):
    """SIGTERM during start-up: the run stops before its first step (exit 143). SIGTERM during the
    last step: it is checkpointed and the run stops (exit 143) without evaluating. SIGTERM as the rerun's final evaluation starts (step N committed): it stops at once
    (exit 143, no eval.json, the previous handlers back). The same command then evaluates (exit 0);
    running it once more changes no logged step."""
    workdir = str(tmp_path / "run")

    def sigterm():
        # The run's handler, not the default action (which would end this test process).
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN)
        os.kill(os.getpid(), signal.SIGTERM)

    real_make_step = train.make_train_step
    steps_run = []

    def sigterm_while_starting(*args, **kwargs):
        step_fn = real_make_step(*args, **kwargs)
        sigterm()
        return lambda *a: steps_run.append(None) or step_fn(*a)

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    with monkeypatch.context() as patch:
        patch.setattr(train, "make_train_step", sigterm_while_starting)
        assert pretrain(workdir) == 128 + signal.SIGTERM
    assert "Stopped by a signal after step 0; nothing to save" in capsys.readouterr().out
    assert not steps_run and latest_step(workdir) is None and logged_steps(workdir) == []

    real_write = reporting.MetricsWriter.write

    def write_then_sigterm(self, step, metrics):
        real_write(self, step, metrics)
        if step == N and "loss" in metrics:  # the last step's log line, before its checkpoint
            sigterm()

    with monkeypatch.context() as patch:
        patch.setattr(reporting.MetricsWriter, "write", write_then_sigterm)
        assert pretrain(workdir) == 128 + signal.SIGTERM
    assert f"Stopped by a signal after step {N}; checkpoint saved" in capsys.readouterr().out
    assert latest_step(workdir) == N and not os.path.exists(os.path.join(workdir, "eval.json"))

    real_evaluate = evaluate.evaluate_encoder
    committed = []

    def sigterm_then_evaluate(*args, **kwargs):
        committed.append(latest_step(workdir))
        sigterm()
        return real_evaluate(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(evaluate, "evaluate_encoder", sigterm_then_evaluate)
        assert pretrain(workdir) == 128 + signal.SIGTERM
    assert committed == [N]  # the signal came during the final evaluation, step N committed
    out = capsys.readouterr().out
    assert f"Stopped by a signal while evaluating step {N}; its checkpoint is saved" in out
    assert not os.path.exists(os.path.join(workdir, "eval.json"))
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers
    assert logged_steps(workdir) == list(range(1, N + 1))

    assert pretrain(workdir) == 0
    assert f"Resuming from the checkpoint at step {N}" in capsys.readouterr().out
    with open(os.path.join(workdir, "eval.json")) as f:
        results = json.load(f)
    assert results["step"] == N and 0.0 <= results["knn"]["top1"] <= 1.0
    records = reporting.read_metrics(workdir)
    assert logged_steps(workdir) == list(range(1, N + 1))
    assert records[-1]["knn_top1"] == results["knn"]["top1"] and "loss" in records[-1]

    # A finished workdir run again evaluates again, and logs no step a second time.
    assert pretrain(workdir) == 0
    assert reporting.read_metrics(workdir) == records


def test_a_signal_before_the_final_evaluation_stops_it_before_it_starts():
    """A notice received while the last checkpoint was being committed (the handler only recorded
    it) stops the evaluation as it is entered; inside, a signal raises at once."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    with train._PreemptionRequest() as preemption:
        preemption._handle(signal.SIGTERM, None)
        with pytest.raises(train.Preempted) as info, preemption.immediate():
            raise AssertionError("the evaluation ran")
        assert info.value.signum == signal.SIGTERM
    with train._PreemptionRequest() as preemption:
        with pytest.raises(train.Preempted), preemption.immediate():
            os.kill(os.getpid(), signal.SIGINT)
            raise AssertionError("the signal did not stop the evaluation")
        assert preemption.signum == signal.SIGINT
        preemption._handle(signal.SIGTERM, None)  # outside `immediate`: recorded only
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers


def test_every_step_is_logged_once_whatever_is_written_again(tmp_path):
    """MetricsWriter merges what is logged for a step the file holds into that step's line (the
    newer value of a key wins), in step order; truncate_metrics merges the duplicate lines that
    earlier versions wrote for a rerun."""
    workdir = str(tmp_path)
    writer = reporting.MetricsWriter(workdir)
    writer.write(1, {"loss": 4.0})
    writer.write(2, {"loss": 3.0})
    writer.write(2, {"knn_top1": 0.5})  # an evaluation at a logged step
    writer.close()
    writer = reporting.MetricsWriter(workdir)  # a rerun or a resumed run
    writer.write(2, {"knn_top1": 0.75, "linear_top1": 0.5})  # its final evaluation
    writer.write(1, {"loss": 4.5})  # a step before the last one logged
    writer.write(3, {"loss": 2.0})
    writer.close()
    expected = [
        {"step": 1, "loss": 4.5},
        {"step": 2, "loss": 3.0, "knn_top1": 0.75, "linear_top1": 0.5},
        {"step": 3, "loss": 2.0},
    ]
    assert reporting.read_metrics(workdir) == expected
    with open(os.path.join(workdir, reporting.METRICS_FILE)) as f:
        assert len(f.readlines()) == len(expected)
    assert not [name for name in os.listdir(workdir) if name.endswith(".tmp")]

    # A file from before, holding step 2 twice and a step logged after the last checkpoint.
    legacy = [*expected[:2], {"step": 2, "knn_top1": 0.25}, expected[2]]
    with open(os.path.join(workdir, reporting.METRICS_FILE), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in legacy)
    reporting.truncate_metrics(workdir, 2)
    assert reporting.read_metrics(workdir) == [expected[0], {**expected[1], "knn_top1": 0.25}]
