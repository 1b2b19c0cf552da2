// The exponential stages of the second-order step, each ONE launch: the exponential
// Euler predictor (mode 0) and the ETD2 corrector (mode 1, and the embedded first-order
// solution with with_embedded) of the locally stepped species, the formulas of
// solver/backends/etd.py (ArrayEtdStages) in the same order of operations.
//
// Python caller: solver/backends/cupy_backend.py (CupyEtdStages), for
// solver/integrators/second_order.py (PredictorCorrector); `real` is typedef'd before.
// Launch shape: 1-D, one thread per (local species, cell), 256 threads per block,
// ceil(n_local * n_cells / 256) blocks. Each thread reads and writes only its own cell:
// out may be stage_in (the second corrector runs in place).

#define SERIES_BELOW ((real)0.1)

__device__ __forceinline__ void phi_functions(const real z, real& e, real& phi1, real& phi2)
{
    const bool small = z < SERIES_BELOW;
    const real zs = small ? (real)1 : z;
    const real em = expm1(-zs);
    const real z2 = z * z;
    phi1 = small ? (real)1 - z / (real)2 + z2 / (real)6 - z2 * z / (real)24 + z2 * z2 / (real)120 : -em / zs;
    phi2 = small ? (real)0.5 - z / (real)6 + z2 / (real)24 - z2 * z / (real)120 + z2 * z2 / (real)720
                 : (zs + em) / (zs * zs);
    e = exp(-z);
}

extern "C" __global__ void __launch_bounds__(256)
etd_stage(const real* __restrict__ u,       // (N_SPECIES, cells), the step's start
          const real* stage_in,             // (N_SPECIES, cells), the stage F1 was taken at (mode 1)
          const real* __restrict__ rate0, const real* __restrict__ sink0,
          const real* __restrict__ rate1, const real* __restrict__ sink1,  // mode 1
          real* out,                        // (N_SPECIES, cells); may be stage_in
          real* embedded,                   // (N_SPECIES, cells), written with with_embedded (mode 1)
          const int* __restrict__ species,  // (n_local,): the locally stepped species
          const int n_local, const long long n_cells, const real h, const int mode,
          const int with_embedded)
{
    const long long tid = (long long)blockIdx.x * 256 + threadIdx.x;
    if (tid >= n_local * n_cells) return;
    const long long idx = species[tid / n_cells] * n_cells + tid % n_cells;
    const real v0 = u[idx];
    real e, phi1, phi2;
    if (mode == 0) {
        const real lam = sink0[idx];
        phi_functions(h * lam, e, phi1, phi2);
        out[idx] = e * v0 + h * phi1 * (rate0[idx] + lam * v0);
        return;
    }
    const real v1 = stage_in[idx];
    const real a = sink0[idx], b = sink1[idx];
    const real lam = (a != a || a > b) ? a : b;  // np.maximum: NaN propagates
    phi_functions(h * lam, e, phi1, phi2);
    const real g0 = rate0[idx] + lam * v0;
    const real g1 = rate1[idx] + lam * v1;
    if (with_embedded) embedded[idx] = e * v0 + h * phi1 * g1;
    out[idx] = e * v0 + h * ((phi1 - phi2) * g0 + phi2 * g1);
}
