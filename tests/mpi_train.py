"""Run by tests/test_mpi.py under ``mpiexec -n R``: python mpi_train.py MODE OUTDIR.

Each mode trains (or fails) the way a user script would, with fit(distributed=True) or make_trainer
over the MPI world, and writes what the test compares into OUTDIR. Errors are printed as one line
and every rank exits with the same status, as the command will.
"""

from __future__ import annotations

import pickle
import sys

import numpy as np

import gpubp
from gpubp.parallel import MPI, StopOnInterrupt, agree_status, communicator, world
from gpubp.training import make_trainer


def problem(n=101, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6)), rng.integers(0, 3, n)


def new_net():
    return gpubp.MLP([6, 9, 7, 3], "tanh", device="cpu", dtype="float64", seed=3)


SETTINGS = {"batch_size": 16, "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}


def gpu_stand_in(count: int, nccl: bool, moved: list):
    """A stand-in GPU network (not yet on a GPU) over a stand-in CuPy with ``count`` GPUs and NCCL or not:
    ``net.to(name)`` appends the name to ``moved``."""
    import contextlib
    from types import SimpleNamespace

    lib = SimpleNamespace(available=nccl, get_unique_id=lambda: b"uid", NcclCommunicator=lambda n, uid, r: None,
                          NCCL_FLOAT32=0, NCCL_FLOAT64=1)  # fmt: skip
    cuda = SimpleNamespace(runtime=SimpleNamespace(getDeviceCount=lambda: count), nccl=lib,
                           Device=lambda i: contextlib.nullcontext())  # fmt: skip
    return SimpleNamespace(device=SimpleNamespace(is_gpu=True, index=None), xp=SimpleNamespace(cuda=cuda),
                           to=moved.append)  # fmt: skip


def main(mode: str, out: str) -> int:
    me = world()
    X, y = problem()
    if mode == "train":
        net = new_net()
        net.fit(X, y, epochs=3, distributed=True, **SETTINGS)
        np.save(f"{out}/theta{me.rank}.npy", net.params.theta)
        if me.is_root:
            np.save(f"{out}/loss.npy", np.array(net.history["train_loss"]))
    elif mode == "bad":
        if me.rank == 1:
            X = X.copy()
            X[5, 1] = np.nan
        new_net().fit(X, y, epochs=3, distributed=True, **SETTINGS)
    elif mode == "shapes":
        rows = 101 if me.rank == 0 else 100
        new_net().fit(X[:rows], y[:rows], epochs=3, distributed=True, **SETTINGS)
    elif mode == "launched":
        from gpubp.parallel import launched_size

        np.save(f"{out}/launched{me.rank}.npy", np.array([launched_size(), me.size, me.local_rank]))
    elif mode == "gpus":  # a stand-in GPU network on a machine with one GPU: 2 local ranks are too many
        communicator(gpu_stand_in(count=1, nccl=True, moved=[]))
    elif mode == "no-nccl":  # a CuPy that could not load libnccl: one clear line on every rank, no hang
        communicator(gpu_stand_in(count=2, nccl=False, moved=[]))
    elif mode == "rank-device":  # two GPUs seen by both ranks (a fake CuPy): each builds on its own, before anything
        from fake_gpu import FakeCupy

        from gpubp import probe
        from gpubp.parallel import rank_device

        fake = FakeCupy(2)
        probe._cupy_status = lambda: (fake, None)
        chosen = [rank_device(spec) for spec in ("gpu", "cuda", None, "cpu", "gpu:0")]
        np.save(f"{out}/chosen{me.rank}.npy", np.array([str(c) for c in chosen]))
    elif mode == "visible":  # a launcher that gives each rank its own GPU: each sees one, as its gpu:0
        import os

        moved: list = []
        os.environ["CUDA_VISIBLE_DEVICES"] = str(me.rank)  # as mpiexec wrappers and Slurm's --gpus-per-task do
        communicator(gpu_stand_in(count=1, nccl=True, moved=moved))
        np.save(f"{out}/moved{me.rank}.npy", np.array(moved))
    elif mode == "interrupt":  # Ctrl-C to mpiexec: every rank stops after the same batch, exit 130
        net = new_net()
        trainer = make_trainer(net, X, y, communicator(net), batch_size=1, lr=1e-3)
        with StopOnInterrupt() as flag:

            def on_batch(i: int, n: int) -> bool:
                if trainer.epoch == 1 and i == 1:
                    open(f"{out}/started", "w").close()  # the test sends Ctrl-C once this exists
                return flag.requested

            trainer.run(10_000, on_batch=on_batch)
        np.save(f"{out}/theta{me.rank}.npy", net.params.theta)
        np.save(f"{out}/where{me.rank}.npy", np.array([trainer.epoch, trainer.position]))
        return 130 if trainer.interrupted else 0
    elif mode == "crash":  # an error outside any agreement: world() installed the hook that ends the job
        if me.rank == 1:
            raise KeyError("rank 1 lost its data")
        new_net().fit(X, y, epochs=3, distributed=True, **SETTINGS)
    elif mode in ("start", "finish"):  # a checkpoint made with R ranks, resumed with any other count
        net = new_net()
        trainer = make_trainer(net, X, y, communicator(net), optimizer="adam", lr=1e-2, batch_size=16)
        if mode == "finish" and me.is_root:
            with open(f"{out}/state.pkl", "rb") as f:
                theta, state = pickle.load(f)
            net.params.theta[...] = theta
            trainer.load_state_dict(state)
        trainer.run(2 if mode == "start" else 5, on_batch=(lambda i, n: i == 3) if mode == "start" else None)
        np.save(f"{out}/theta{me.rank}.npy", net.params.theta)
        if me.is_root:
            with open(f"{out}/state.pkl", "wb") as f:
                pickle.dump((net.params.theta.copy(), trainer.state_dict()), f)
    else:
        raise SystemExit(f"unknown mode {mode}")
    return 0


if __name__ == "__main__":
    try:
        status = main(sys.argv[1], sys.argv[2])
    except (ValueError, TypeError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        status = 2
    sys.exit(agree_status(MPI(), status))
