"""Data parallelism with R ranks as threads: equals one process, ranks agree, errors reach every rank."""

from __future__ import annotations

import re

import numpy as np
import pytest
from threads import ThreadWorld

import gpubp
from gpubp.parallel import Local, agree, agree_status
from gpubp.training import Trainer, TrainingDivergedError, make_trainer

RULES = {
    "sgd": {},
    "momentum": {"momentum": 0.9},
    "nesterov": {"momentum": 0.8, "nesterov": True},
    "adam": {"optimizer": "adam", "lr": 1e-2},
    "momentum+decay": {"momentum": 0.9, "weight_decay": 1e-2},
    "adam+decay": {"optimizer": "adam", "lr": 1e-2, "weight_decay": 1e-2},
}


def problem(n=101, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6)), rng.integers(0, 3, n)


def new_net(seed=3):
    return gpubp.MLP([6, 9, 7, 3], "tanh", device="cpu", dtype="float64", seed=seed)


def train(comm, X, y, epochs=3, batch_size=16, seed=3, **kw):
    net = new_net(seed)
    trainer = make_trainer(net, X, y, comm, batch_size=batch_size, **{"lr": 0.1, **kw})
    trainer.run(epochs)
    return net, trainer


def flat(net):
    return net.params.theta.copy()


@pytest.mark.parametrize("ranks", [2, 3])
@pytest.mark.parametrize("rule", list(RULES))
def test_r_ranks_equal_one_process_and_each_other(rule, ranks):
    X, y = problem()  # 101 rows, batch 16: a last batch of 5 that does not split evenly over 2 or 3
    one, _ = train(None, X, y, **RULES[rule])
    nets = ThreadWorld(ranks).run(lambda comm: train(comm, X, y, **RULES[rule])[0])
    for net in nets[1:]:
        np.testing.assert_array_equal(flat(net), flat(nets[0]))  # bitwise the same on every rank
    np.testing.assert_allclose(flat(nets[0]), flat(one), rtol=1e-10, atol=1e-12)
    assert not np.allclose(flat(one), flat(new_net()))  # it did train
    np.testing.assert_allclose(nets[0].history["train_loss"], one.history["train_loss"], rtol=1e-10)


def test_a_batch_smaller_than_the_rank_count():
    X, y = problem(n=11)
    one, _ = train(None, X, y, batch_size=2, momentum=0.9)
    nets = ThreadWorld(3).run(lambda comm: train(comm, X, y, batch_size=2, momentum=0.9)[0])
    np.testing.assert_allclose(flat(nets[2]), flat(one), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(flat(nets[2]), flat(nets[0]))


def test_rank_0_weights_and_shuffling_win_even_without_a_seed():
    X, y = problem(n=40)

    def run(comm):
        net = gpubp.MLP([6, 5, 3], device="cpu", dtype="float64")  # seed=None: different on each rank
        make_trainer(net, X, y, comm, batch_size=8, lr=0.1).run(2)
        return flat(net)

    a, b = ThreadWorld(2).run(run)
    np.testing.assert_array_equal(a, b)


def test_early_stopping_and_history_are_the_same_on_every_rank():
    X, y = problem(n=60)
    Xv, yv = problem(n=30, seed=1)
    kw = {"lr": 0.3, "momentum": 0.9, "validation_data": (Xv, yv), "patience": 2}

    def run(comm):
        net, trainer = train(comm, X, y, epochs=40, batch_size=8, **kw)
        return flat(net), trainer.stopped_early, trainer.best_epoch, net.history["val_loss"]

    results = ThreadWorld(2).run(run)
    one, trainer = train(None, X, y, epochs=40, batch_size=8, **kw)
    assert trainer.stopped_early
    assert results[0][1]
    assert results[1][1]
    assert results[0][2] == results[1][2] == trainer.best_epoch
    assert results[0][3] == results[1][3]
    np.testing.assert_allclose(results[0][3], one.history["val_loss"], rtol=1e-9)
    np.testing.assert_array_equal(results[0][0], results[1][0])


def test_divergence_is_raised_on_every_rank_with_the_same_weights_kept():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 3)) * 10, rng.normal(size=64) * 10

    def run(comm):
        net = gpubp.MLP([3, 16, 1], "relu", loss="mse", device="cpu", seed=0)
        trainer = make_trainer(net, X, y, comm, batch_size=4, lr=50.0, momentum=0.9)
        with pytest.raises(TrainingDivergedError):
            trainer.run(5)
        return flat(net), trainer.epoch

    (a, ea), (b, eb) = ThreadWorld(2).run(run)
    np.testing.assert_array_equal(a, b)
    assert ea == eb
    assert np.isfinite(a).all()


def test_callback_runs_on_rank_0_and_its_stop_reaches_every_rank():
    X, y = problem(n=40)
    calls = []

    def run_with_callback(comm):
        net = new_net()
        trainer = make_trainer(net, X, y, comm, batch_size=8, lr=0.1)
        trainer.run(10, callback=lambda net, row: calls.append(comm.rank) or row["epoch"] == 3)
        return trainer.epoch

    assert ThreadWorld(2).run(run_with_callback) == [3, 3]
    assert calls == [0, 0, 0]


def test_resume_across_rank_counts_2_then_1_then_3():
    X, y = problem()
    kw = {"batch_size": 16, "lr": 1e-2, "optimizer": "adam", "weight_decay": 1e-3}
    straight, _ = train(None, X, y, epochs=6, **kw)

    def first(comm):
        net = new_net()
        trainer = make_trainer(net, X, y, comm, **kw)
        trainer.run(2, on_batch=lambda i, n: i == 3)  # stop inside epoch 2 (a mid-epoch state)
        return flat(net), trainer.state_dict()

    (theta, state), _ = ThreadWorld(2).run(first)
    net = new_net()
    net.params.theta[...] = theta
    trainer = Trainer(net, X, y, **kw)
    trainer.load_state_dict(state)
    trainer.run(4)
    theta, state = flat(net), trainer.state_dict()

    def last(comm):
        net = new_net(seed=99 + comm.rank)  # rank 0's resumed state wins everywhere
        if comm.rank == 0:
            net.params.theta[...] = theta
        trainer = make_trainer(net, X, y, comm, **kw)
        if comm.rank == 0:
            trainer.load_state_dict(state)
        trainer.run(6)
        return flat(net)

    nets = ThreadWorld(3).run(last)
    np.testing.assert_array_equal(nets[0], nets[2])
    np.testing.assert_allclose(nets[0], flat(straight), rtol=1e-10, atol=1e-12)


def test_different_data_shapes_on_the_ranks_are_refused_on_every_rank():
    X, y = problem(n=40)

    def run(comm):
        rows = 40 if comm.rank == 0 else 39
        with pytest.raises(ValueError, match=r"the ranks differ in training rows \(rank 0: 40, rank 1: 39\)"):
            make_trainer(new_net(), X[:rows], y[:rows], comm, batch_size=8)

    ThreadWorld(2).run(run)


def test_bad_data_on_one_rank_raises_its_message_on_every_rank():
    X, y = problem(n=40)
    bad = X.copy()
    bad[3, 2] = np.nan

    def run(comm):
        with pytest.raises(ValueError, match="NaN") as info:
            make_trainer(new_net(), bad if comm.rank == 1 else X, y, comm, batch_size=8)
        return str(info.value)

    messages = ThreadWorld(3).run(run)
    assert messages[0].startswith("rank 1: ")
    assert messages[2] == messages[0]
    assert not messages[1].startswith("rank")


def test_agree_and_exit_status():
    assert agree(Local(), None) is None
    with pytest.raises(KeyError):
        agree(Local(), KeyError("x"))
    assert ThreadWorld(3).run(lambda comm: agree_status(comm, 2 if comm.rank == 1 else 0)) == [2, 2, 2]
    assert ThreadWorld(2).run(lambda comm: agree_status(comm, 0)) == [0, 0]


def test_a_hung_rank_fails_the_thread_world_instead_of_blocking():
    def run(comm):
        if comm.rank == 1:
            raise KeyError("rank 1 left")
        comm.allreduce(np.zeros(3))

    with pytest.raises(KeyError, match="rank 1 left"):
        ThreadWorld(2, timeout=5).run(run)


def test_distributed_must_be_a_bool():
    X, y = problem(n=10)
    with pytest.raises(TypeError, match="distributed must be True or False"):
        new_net().fit(X, y, distributed="yes")


def test_distributed_without_mpi4py_says_what_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_mpi(name, *args, **kwargs):
        if name.startswith("mpi4py"):
            raise ImportError("No module named 'mpi4py'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mpi)
    X, y = problem(n=10)
    with pytest.raises(ImportError, match=r"pip install 'gpubp\[mpi\]'"):
        new_net().fit(X, y, distributed=True)


def test_status_says_whether_mpi_and_nccl_are_usable_and_why_not():
    from gpubp.parallel import status

    info = status()
    for part in ("mpi", "nccl"):
        assert isinstance(info[part]["available"], bool)
        if not info[part]["available"]:
            assert info[part]["reason"]
    import subprocess
    import sys

    code = "import sys; from gpubp.parallel import status; status(); print('mpi4py.MPI' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"  # looking does not initialise MPI


def test_streamed_rows_split_over_ranks_too():
    X, y = problem()
    one, _ = train(None, X, y, momentum=0.9, stream=True)
    nets = ThreadWorld(2).run(lambda comm: train(comm, X, y, momentum=0.9, stream=True)[0])
    np.testing.assert_array_equal(flat(nets[0]), flat(nets[1]))
    np.testing.assert_allclose(flat(nets[0]), flat(one), rtol=1e-10, atol=1e-12)


def test_launched_size_reads_the_launchers_environment(monkeypatch):
    from gpubp.parallel import launched_size

    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert launched_size() == 1
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    assert launched_size() == 4


def test_different_settings_on_the_ranks_are_refused_on_every_rank():
    X, y = problem(n=40)

    def run(comm):
        with pytest.raises(ValueError, match=r"the ranks differ in lr \(rank 0: 0.1, rank 1: 0.2\)"):
            make_trainer(new_net(), X, y, comm, batch_size=8, lr=0.1 * (comm.rank + 1))

    ThreadWorld(2).run(run)


def test_the_first_ctrl_c_asks_to_stop_and_the_second_interrupts():
    import os
    import signal

    from gpubp.parallel import StopOnInterrupt

    before = signal.getsignal(signal.SIGINT)
    with StopOnInterrupt() as flag:
        assert not flag.requested
        os.kill(os.getpid(), signal.SIGINT)
        assert flag.requested
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


# -- which GPU each rank of a machine takes --------------------------------------------------------


def test_ranks_that_see_the_same_gpus_take_one_each_in_local_rank_order():
    from gpubp.parallel import node_gpu

    assert [node_gpu(r, 4, [None] * 4) for r in range(4)] == [0, 1, 2, 3]
    assert [node_gpu(r, 4, ["0,1,2,3"] * 2) for r in range(2)] == [0, 1]


def test_ranks_given_their_own_gpus_by_the_launcher_take_their_first():
    from gpubp.parallel import node_gpu

    visible = ["0", "1", "2", "3"]  # Slurm's --gpus-per-task=1, or a wrapper setting CUDA_VISIBLE_DEVICES per rank
    assert [node_gpu(r, 1, visible) for r in range(4)] == [0, 0, 0, 0]
    assert [node_gpu(r, 2, ["0,1", "2,3"]) for r in range(2)] == [0, 0]


@pytest.mark.parametrize(
    ("local_rank", "count", "visible", "said"),
    [
        (2, 2, [None] * 3, "this machine runs 3 ranks but they see 2 GPU(s): start at most 2 ranks per machine"),
        (1, 1, ["0", "1", "1"], "local ranks 1 and 2 would train on the same GPU"),
        (0, 0, ["", "1"], "local rank 0 sees no GPU"),
    ],
)
def test_a_machine_whose_ranks_cannot_each_have_a_gpu_is_one_clear_error(local_rank, count, visible, said):
    from gpubp.parallel import node_gpu

    with pytest.raises(RuntimeError, match=re.escape(said)):
        node_gpu(local_rank, count, visible)


def test_nccl_unavailable_is_reported_with_what_to_install():
    from types import SimpleNamespace

    from gpubp.parallel import nccl_or_reason

    lib, reason = nccl_or_reason(SimpleNamespace(cuda=SimpleNamespace(nccl=SimpleNamespace(available=False))))
    assert lib is None
    assert "could not load the NCCL library" in reason
    assert "nvidia-nccl-cu12" in reason
    ok = SimpleNamespace(available=True)
    assert nccl_or_reason(SimpleNamespace(cuda=SimpleNamespace(nccl=ok))) == (ok, None)
