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


# float32 as CuPy compiles it (-ftz=true): subnormal inputs read as zero (DAZ) and subnormal results written as
# zero (FTZ), set in the x86-64 SSE control register around the call and restored after it
_FTZ_DAZ = "0x8040"


def host_source() -> str:
    """Each kernel as ``{name}_float`` and ``{name}_double`` (IEEE, as the NumPy twins), and ``{name}_float_ftz``
    (float32 with flush-to-zero, as on the GPU)."""
    parts = ["#include <cmath>", "#include <xmmintrin.h>", "using namespace std;"]
    for k in ALL:
        parts.append(
            f"template <typename T>\nstatic void {k.name}_impl({_signature(k, 'T')}) {{\n"
            f"  for (long _k = 0; _k < n_elems; ++_k) {{ {_bindings(k, 'T')} {k.body}; }}\n}}"
        )
        args = ", ".join(["n_elems"] + [f"in_{n}" for n in k.inputs] + [f"out_{n}" for n in k.outputs])
        for T in ("float", "double"):
            parts.append(f'extern "C" void {k.name}_{T}({_signature(k, T)}) {{ {k.name}_impl<{T}>({args}); }}')
        parts.append(f'extern "C" void {k.name}_float_ftz({_signature(k, "float")}) {{ unsigned csr = _mm_getcsr(); '
                     f"_mm_setcsr(csr | {_FTZ_DAZ}); {k.name}_impl<float>({args}); _mm_setcsr(csr); }}")  # fmt: skip
    for k in ROWS:  # the row body over each row in turn, as one CUDA thread a row runs it
        parts.append(f"template <typename T> static void {k.name}_row(T* r, const T* b, long long n) {{ {k.body} }}")
        for T in ("float", "double"):
            parts.append(f'extern "C" void {k.name}_{T}(const {T}* b, {T}* a, long long rows, long long n) '
                         f"{{ for (long long i = 0; i < rows; ++i) {k.name}_row<{T}>(a + i * n, b, n); }}")  # fmt: skip
        parts.append(f'extern "C" void {k.name}_float_ftz(const float* b, float* a, long long rows, long long n) '
                     f"{{ unsigned csr = _mm_getcsr(); _mm_setcsr(csr | {_FTZ_DAZ}); "
                     f"{k.name}_float(b, a, rows, n); _mm_setcsr(csr); }}")  # fmt: skip
    return "\n".join(parts).replace("__restrict__", "__restrict") + "\n"
