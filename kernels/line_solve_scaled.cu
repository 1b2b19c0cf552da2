// Backward-Euler diffusion along one axis with a per-cell diffusion number, in place:
// row i of (I - r S L) u = rhs is -r_i u_{i-1} + (1 + 2 r_i) u_i - r_i u_{i+1}, with
// r_i = r * scale_i; the faces' ghost rules u_ghost = alpha u_edge + beta folded into the
// edge rows (diagonal 1 + r_i (2 - alpha), right-hand side + r_i beta). With
// scale = 1 / (1 + tau lambda) this is the line solve of the sink-scaled factorisation of
// the IMEX step. The coefficients change from cell to cell, so the Thomas factors are
// computed in the sweep; cyclic lines by Sherman-Morrison with a second right-hand side in
// the same sweep. The same algebra as solver/backends/lines.py (solve_scaled).
//
// Python caller: solver/backends/cupy_backend.py (CupyLineSolver.solve with scale); the
// host prepends `typedef float|double real;`. Launch shape and line layout as
// line_solve.cu: one thread per line, ceil(n_lines / 128) blocks of 128 threads; line l
// starts at (l / inner) * outer_stride + (l % inner) and its cells are `stride` apart.

extern "C" __global__ void line_solve_scaled(
    real* __restrict__ u,                 // one species, (NX, NY, NZ); rhs in, solution out
    const real* __restrict__ scale,       // the per-cell factor on r, same layout
    real* __restrict__ cprime,            // scratch, same layout: forward-elimination factors
    real* __restrict__ zline,             // scratch, same layout: Sherman-Morrison vector (cyclic)
    const int n, const long long stride, const long long inner, const long long outer_stride,
    const long long n_lines, const real r,
    const real alpha_low, const real beta_low, const real alpha_high, const real beta_high,
    const int cyclic)
{
    const long long l = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (l >= n_lines) return;
    const long long base = (l / inner) * outer_stride + (l % inner);
    real* line = u + base;
    const real* s = scale + base;
    real* cp = cprime + base;
    real* zl = zline + base;
    const long long last = (long long)(n - 1) * stride;
    const real r0 = r * s[0];
    const real rl = r * s[last];
    real gamma = (real)0;
    // forward sweep: y_i = (d_i - a_i y_{i-1}) / pivot_i, c'_i = upper_i / pivot_i
    real pivot, y, zy = (real)0;
    {
        real diag = (real)1 + (real)2 * r0;
        real d = line[0];
        if (cyclic) {
            gamma = -diag;
            diag = diag - gamma;
            zy = gamma;
        } else if (n == 1) {
            diag = (real)1 + r0 * (((real)1 - alpha_low) + ((real)1 - alpha_high));
            d += r0 * (beta_low + beta_high);
        } else {
            diag -= r0 * alpha_low;
            d += r0 * beta_low;
        }
        pivot = diag;
        y = d / pivot;
        zy = zy / pivot;
        line[0] = y;
        zl[0] = zy;
    }
    real r_prev = r0;
    for (int i = 1; i < n; ++i) {
        const long long at = (long long)i * stride;
        const real ri = r * s[at];
        real diag = (real)1 + (real)2 * ri;
        real d = line[at];
        real zd = (real)0;
        if (i == n - 1) {
            if (cyclic) {
                diag -= rl * r0 / gamma;
                zd = -rl;
            } else {
                diag -= ri * alpha_high;
                d += ri * beta_high;
            }
        }
        const real c = -r_prev / pivot;      // c'_{i-1} = upper_{i-1} / pivot_{i-1}, upper = -r_{i-1}
        cp[at - stride] = c;
        pivot = diag - (-ri) * c;            // lower_i = -r_i
        y = (d - (-ri) * y) / pivot;
        zy = (zd - (-ri) * zy) / pivot;
        line[at] = y;
        zl[at] = zy;
        r_prev = ri;
    }
    // back substitution: y_i -= c'_i y_{i+1}
    real next = y, znext = zy;
    for (int i = n - 2; i >= 0; --i) {
        const long long at = (long long)i * stride;
        next = line[at] - cp[at] * next;
        line[at] = next;
        znext = zl[at] - cp[at] * znext;
        zl[at] = znext;
    }
    if (cyclic) {
        const real v_last = -r0 / gamma;
        const real f = (line[0] + v_last * line[last]) / ((real)1 + (zl[0] + v_last * zl[last]));
        for (int i = 0; i < n; ++i) line[(long long)i * stride] -= f * zl[(long long)i * stride];
    }
}
