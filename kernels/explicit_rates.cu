// Right-hand side F and sink rate lambda of every species, in ONE launch: the same
// diffusion, upwind chemotaxis and reaction terms as explicit_step.cu, written out
// instead of stepped. The second-order step (solver/integrators/second_order.py)
// combines three such evaluations (an exponential predictor-corrector).
//
// Python caller: solver/backends/cupy_backend.py (CupyExplicitStepper.rates), through
// solver/backends/cuda_codegen.py (explicit_rates_source), which prepends the #define
// block and the generated device function `model_rates`.
// Launch shape: as explicit_step.cu (1-D, one thread per cell, BLOCK_SIZE per block).

extern "C" __global__ void __launch_bounds__(BLOCK_SIZE)
explicit_rates(const real* __restrict__ u,     // (N_SPECIES, NX, NY, NZ), time t
               real* __restrict__ rate,        // (N_SPECIES, NX, NY, NZ): F(u, t)
               real* __restrict__ sink,        // (N_SPECIES, NX, NY, NZ): lambda(u, t) >= 0
               const real* __restrict__ maps,  // (N_MAPS, NX, NY, NZ), static
               real* __restrict__ diffusion_out, // (N_SPECIES, NX, NY, NZ): D lap u of the species
                                                 // with implicit diffusion (others not written)
               const real t SYSTEMIC_PARAMS)
{
    const long long idx = (long long)blockIdx.x * BLOCK_SIZE + threadIdx.x;
    if (idx >= N_CELLS) return;
    const int k = (int)(idx % NZ);
    const int j = (int)((idx / NZ) % NY);
    const int i = (int)(idx / ((long long)NY * NZ));
    model_rates(u, rate, sink, maps, diffusion_out, idx, i, j, k, t SYSTEMIC_ARGS);
}
