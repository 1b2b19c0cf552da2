// Backward-Euler cell transport along one axis: diffusion plus upwind chemotaxis up a
// signal, (I + tau d/dx F) u = rhs on every grid line, in place, by the Thomas algorithm
// with the coefficients computed during the sweep from the signal at the start of the
// step (they change every step: no precomputed factors). The same algebra, in the same
// order of operations, as solver/integrators/transport_solvers.py (ImplicitTransport1D).
//
// Python caller: solver/backends/cupy_backend.py (CupyTransportSolver.solve); the host
// prepends `typedef float|double real;`. Launch shape and line layout as line_solve.cu:
// one thread per line, ceil(n_lines / 128) blocks of 128 threads; line l starts at
// (l / inner) * outer_stride + (l % inner) and its cells are `stride` apart.

extern "C" __global__ void transport_solve(
    real* __restrict__ u,                 // one species, (NX, NY, NZ); rhs in, solution out
    const real* __restrict__ s,           // its signal at the start of the step, same layout
    real* __restrict__ cprime,            // scratch, same layout: forward-elimination factors
    const int n, const long long stride, const long long inner, const long long outer_stride,
    const long long n_lines,
    const real r, const real q, const real chi_over_h,   // D tau / h^2, tau / h, chi / h
    const real edge_low, const real rhs_low,              // r (1 - alpha), r beta of the low face
    const real edge_high, const real rhs_high)            // and of the high face
{
    const long long l = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (l >= n_lines) return;
    const long long base = (l / inner) * outer_stride + (l % inner);
    real* line = u + base;
    const real* sig = s + base;
    real* cp = cprime + base;
    real left_vp = (real)0, left_vm = (real)0;  // v+ and v- of the face i - 1/2
    real prev_y = (real)0, prev_cp = (real)0;
    for (int i = 0; i < n; ++i) {
        const long long at = (long long)i * stride;
        real diag = (real)1;
        real rhs_i = line[at];
        if (i == 0) { diag += edge_low; rhs_i += rhs_low; }
        if (i == n - 1) { diag += edge_high; rhs_i += rhs_high; }
        real vp = (real)0, vm = (real)0, upper = (real)0;
        if (i < n - 1) {
            const real v = chi_over_h * (sig[at + stride] - sig[at]);
            vp = v > (real)0 ? v : (real)0;
            vm = -v > (real)0 ? -v : (real)0;
            diag += r + q * vp;
            upper = -(r + q * vm);
        }
        real pivot, y;
        if (i > 0) {
            diag += r + q * left_vm;
            const real lower = -(r + q * left_vp);
            pivot = diag - lower * prev_cp;
            y = (rhs_i - lower * prev_y) / pivot;
        } else {
            pivot = diag;
            y = rhs_i / pivot;
        }
        line[at] = y;
        prev_y = y;
        if (i < n - 1) {
            prev_cp = upper / pivot;
            cp[at] = prev_cp;
            left_vp = vp;
            left_vm = vm;
        }
    }
    // back substitution: y_i -= c'_i y_{i+1}
    real next = prev_y;
    for (int i = n - 2; i >= 0; --i) {
        const long long at = (long long)i * stride;
        next = line[at] - cp[at] * next;
        line[at] = next;
    }
}
