// Right-hand side F and sink rate lambda of every species, in ONE launch: the same
// diffusion, upwind chemotaxis and reaction terms as explicit_step.cu, written out
// instead of stepped. The second-order step (solver/integrators/second_order.py)
// combines three such evaluations (an exponential predictor-corrector).
//
// Python caller: solver/backends/cupy_backend.py (CupyExplicitStepper.rates), through
// solver/backends/cuda_codegen.py (explicit_rates_source), which prepends the #define
// block and the generated device function `model_rates`.
// Launch shape: as explicit_step.cu (3-D blocks of BLOCK_Z x BLOCK_Y x BLOCK_X cells).

extern "C" __global__ void __launch_bounds__(BLOCK_SIZE)
explicit_rates(const real* __restrict__ u,     // (N_SPECIES, NX, NY, NZ), time t
               real* __restrict__ rate,        // (N_SPECIES, NX, NY, NZ): F(u, t)
               real* __restrict__ sink,        // (N_SPECIES, NX, NY, NZ): lambda(u, t) >= 0
               const real* __restrict__ maps,  // (N_MAPS, NX, NY, NZ), static
               real* __restrict__ diffusion_out, // (N_SPECIES, NX, NY, NZ): D lap u of the species
                                                 // with implicit diffusion (others not written)
               const real t SYSTEMIC_PARAMS)
{
    const int k = blockIdx.x * BLOCK_Z + threadIdx.x;
    const int j = blockIdx.y * BLOCK_Y + threadIdx.y;
    const int i = blockIdx.z * BLOCK_X + threadIdx.z;
    if (k >= NZ || j >= NY || i >= NX) return;
    const long long idx = ((long long)i * NY + j) * NZ + k;
    model_rates(u, rate, sink, maps, diffusion_out, idx, i, j, k, t SYSTEMIC_ARGS);
}
