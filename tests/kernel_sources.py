"""Build every kernel of gpubp.kernels as CUDA (for nvcc) and as host C++ (for g++).

The bodies are pasted unchanged into a loop over elements, with the same names bound to the
current element as CuPy's ElementwiseKernel binds them: inputs as const values, outputs as
references, so in-place updates behave as on the GPU.
"""

from __future__ import annotations

from gpubp.kernels import ALL, ROWS, Kernel


def _signature(k: Kernel, T: str) -> str:
    params = [f"const {T}* __restrict__ in_{n}" for n in k.inputs]
    params += [f"{T}* __restrict__ out_{n}" for n in k.outputs]
    return "long n_elems, " + ", ".join(params)


def _bindings(k: Kernel, T: str) -> str:
    lines = [f"const {T} {n} = in_{n}[_k];" for n in k.inputs]
    lines += [f"{T}& {n} = out_{n}[_k];" for n in k.outputs]
    return " ".join(lines)


def cuda_source() -> str:
    parts = ["#include <cuda_runtime.h>"]
    for k in ALL:
        parts.append(
            f"template <typename T>\n__global__ void {k.name}({_signature(k, 'T')}) {{\n"
            f"  long _k = blockIdx.x * (long)blockDim.x + threadIdx.x;\n"
            f"  if (_k >= n_elems) return;\n  {_bindings(k, 'T')}\n  {k.body};\n}}"
        )
        for T in ("float", "double"):
            sig = _signature(k, T)
            types = ", ".join(p.rsplit(" ", 1)[0] for p in sig.split(", "))
            parts.append(f"template __global__ void {k.name}<{T}>({types});")
    parts += [k.source() for k in ROWS]  # the row kernels, as CuPy's RawModule compiles them
    return "\n".join(parts) + "\n"


def host_source() -> str:
    parts = ["#include <cmath>", "using namespace std;"]
    for k in ALL:
        parts.append(
            f"template <typename T>\nstatic void {k.name}_impl({_signature(k, 'T')}) {{\n"
            f"  for (long _k = 0; _k < n_elems; ++_k) {{ {_bindings(k, 'T')} {k.body}; }}\n}}"
        )
        for T in ("float", "double"):
            args = ", ".join(["n_elems"] + [f"in_{n}" for n in k.inputs] + [f"out_{n}" for n in k.outputs])
            parts.append(f'extern "C" void {k.name}_{T}({_signature(k, T)}) {{ {k.name}_impl<{T}>({args}); }}')
    for k in ROWS:  # the row body over each row in turn, as one CUDA thread a row runs it
        parts.append(f"template <typename T> static void {k.name}_row(T* r, const T* b, long long n) {{ {k.body} }}")
        for T in ("float", "double"):
            parts.append(f'extern "C" void {k.name}_{T}(const {T}* b, {T}* a, long long rows, long long n) '
                         f"{{ for (long long i = 0; i < rows; ++i) {k.name}_row<{T}>(a + i * n, b, n); }}")  # fmt: skip
    return "\n".join(parts).replace("__restrict__", "__restrict") + "\n"
