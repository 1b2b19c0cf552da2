// Backward-Euler diffusion along one axis: (I - r L) u = rhs on every grid line, in place,
// by the Thomas algorithm with factors precomputed on the host (cyclic lines by
// Sherman-Morrison). The same algebra as solver/integrators/line_solvers.py.
//
// Python caller: solver/backends/cupy_backend.py (CupyLineSolver.solve); the host
// prepends `typedef float|double real;`. Launch shape: 1-D grid, one thread per line,
// ceil(n_lines / 128) blocks of 128 threads. Line l starts at
//   base = (l / inner) * outer_stride + (l % inner)
// and its cells are `stride` apart; consecutive threads take consecutive l, which are
// neighbouring addresses for the x and y sweeps (coalesced) and `stride` apart for z.

extern "C" __global__ void line_solve(
    real* __restrict__ u,                 // one species, (NX, NY, NZ); rhs in, solution out
    const real* __restrict__ lower,       // (n - 1) sub-diagonal
    const real* __restrict__ cprime,      // (n - 1) forward-elimination factors
    const real* __restrict__ inv_denom,   // (n) 1 / pivots
    const real* __restrict__ z,           // (n) Sherman-Morrison vector (cyclic only)
    const int n, const long long stride, const long long inner, const long long outer_stride,
    const long long n_lines,
    const real rhs_low, const real rhs_high,   // r beta of the faces' ghost rules (value g: 2 r g; no-flux: 0)
    const int cyclic, const real v_last)
{
    const long long l = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (l >= n_lines) return;
    real* line = u + (l / inner) * outer_stride + (l % inner);
    // forward sweep, in place: y_i = (d_i - a_i y_{i-1}) / pivot_i
    real prev = (line[0] + rhs_low) * inv_denom[0];
    line[0] = prev;
    for (int i = 1; i < n; ++i) {
        real d = line[(long long)i * stride];
        if (i == n - 1) d += rhs_high;
        prev = (d - lower[i - 1] * prev) * inv_denom[i];
        line[(long long)i * stride] = prev;
    }
    // back substitution: y_i -= c'_i y_{i+1}
    real next = prev;
    for (int i = n - 2; i >= 0; --i) {
        next = line[(long long)i * stride] - cprime[i] * next;
        line[(long long)i * stride] = next;
    }
    if (cyclic) {
        const real vy = line[0] + v_last * line[(long long)(n - 1) * stride];
        const real vz = z[0] + v_last * z[n - 1];
        const real f = vy / ((real)1 + vz);
        for (int i = 0; i < n; ++i) line[(long long)i * stride] -= f * z[i];
    }
}
