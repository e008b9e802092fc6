"""Latent GPU bugs a CPU can show with the fake CuPy (issue 27, finding 8): the copy stream's wait for a new
landing buffer, the row kernel's empty grid and unchecked pointers, and a CUDA array whose interface raises."""

from __future__ import annotations

import numpy as np
import pytest
from fake_gpu import FakeCupy, fake_device

from gpubp import kernels as K


def _upload(gpu, fake, rows: int) -> None:
    host = gpu.staging((rows, 3), np.float32, "X")
    host[:] = 1
    with gpu.use():
        out = fake.empty((rows, 3), np.float32)
    gpu.upload(host, out)


def _waits_after_landing(fake) -> list:
    """Each copy-stream wait since the last landing buffer was made: (event recorded since then?)."""
    order = fake.order
    last = max(i for i, e in enumerate(order) if e[0] == "alloc" and e[1][1] == 3 and e[1][0] >= 4)
    recorded, waits = set(), []
    for e in order[last:]:
        if e[0] == "record":
            recorded.add(e[1])
        elif e[0] == "wait_event" and e[1] != 0:  # the copy stream's (the current stream is the null one)
            waits.append(e[2] in recorded)
    return waits


def test_a_new_or_grown_landing_buffer_waits_for_the_work_queued_before_it():
    """The copy stream writes a landing buffer fresh from the pool, whose block queued compute work may still
    read: it must wait on an event recorded on the compute stream after the buffer was made (an event never
    recorded waits for nothing), at the first upload and when the buffer grows."""
    fake = FakeCupy(1)
    gpu = fake_device(fake, 0)
    _upload(gpu, fake, 4)
    assert _waits_after_landing(fake) == [True]
    _upload(gpu, fake, 4)  # the other staging slot: a landing buffer of its own
    _upload(gpu, fake, 9)  # grown
    assert _waits_after_landing(fake) == [True]


def _row_kernel():
    fake = FakeCupy(1)
    gpu = fake_device(fake, 0)
    return gpu, fake, gpu.row_kernel(K.softmax_rows)


def test_the_softmax_row_kernel_does_nothing_for_zero_rows():
    """A rank's empty share under data parallelism: no launch (a grid of 0 blocks is a CUDA launch error)."""
    gpu, fake, run = _row_kernel()
    with gpu.use():
        run(fake.zeros(5, np.float32), fake.zeros((0, 5), np.float32))
        a = fake.ones((2, 5), np.float32)
        run(fake.zeros(5, np.float32), a)
    np.testing.assert_allclose(a.get(), 0.2)


def test_the_softmax_row_kernel_refuses_what_its_raw_pointers_cannot_read():
    gpu, fake, run = _row_kernel()
    with gpu.use():
        a = fake.zeros((4, 6), np.float32)
        with pytest.raises(ValueError, match="must be C-contiguous"):
            run(fake.zeros(3, np.float32), a[:, ::2])
        with pytest.raises(TypeError, match="one dtype, got a float32 and b float64"):
            run(fake.zeros(6, np.float64), a)
        with pytest.raises(ValueError, match=r"expected a \(rows, n\) and b \(n,\), got \(4, 6\) and \(5,\)"):
            run(fake.zeros(5, np.float32), a)


class _GradTensor:
    """A PyTorch CUDA tensor with requires_grad=True, as far as gpubp can see: its CUDA array interface raises
    RuntimeError (which hasattr lets through)."""

    shape, ndim = (4, 3), 2

    @property
    def __cuda_array_interface__(self):
        raise RuntimeError("Can't get __cuda_array_interface__ on Variable that requires grad. Use var.detach()")

    def __dlpack__(self, stream=None):
        raise RuntimeError("Can't export tensors that require gradient, use tensor.detach()")


def test_a_cuda_array_whose_interface_raises_is_refused_with_the_reason():
    import gpubp
    from gpubp.device import is_foreign_cuda_array

    with pytest.raises(TypeError, match=r"_GradTensor is a CUDA array whose __cuda_array_interface__ cannot be read.*"
                       r"pass tensor.detach\(\)"):  # fmt: skip
        is_foreign_cuda_array(_GradTensor())
    net = gpubp.MLP([3, 4, 2], device="cpu", seed=0)
    with pytest.raises(TypeError, match=r"requires grad: pass tensor\.detach\(\)"):
        net.forward(_GradTensor())


def test_the_estimators_refuse_it_too():
    pytest.importorskip("sklearn")
    from gpubp.sklearn import MLPClassifier

    with pytest.raises(TypeError, match=r"requires grad: pass tensor\.detach\(\)"):
        MLPClassifier(device="cpu").fit(_GradTensor(), [0, 1, 0, 1])
