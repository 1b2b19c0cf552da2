// Forward-Euler step of every species in ONE launch: diffusion, upwind chemotaxis
// and the reaction terms, fused; reads u (n_species x N) and writes u_new.
//
// Python caller: solver/backends/cupy_backend.py (CupyExplicitStepper.step), through
// solver/backends/cuda_codegen.py, which prepends the #define block (NX, NY, NZ,
// N_CELLS, INV_HX2.., `real`) and the generated device function `model_update`.
// SYSTEMIC_PARAMS / SYSTEMIC_ARGS (also generated) pass the systemic scalars (plasma
// drug levels, circulating cells) by value: no host-to-device copy per step.
// Launch shape: 1-D grid, one thread per cell, BLOCK_SIZE threads per block,
// ceil(N_CELLS / BLOCK_SIZE) blocks. The flat index runs fastest along z, so
// neighbouring threads touch neighbouring addresses (coalesced) in every array.

extern "C" __global__ void __launch_bounds__(BLOCK_SIZE)
explicit_step(const real* __restrict__ u,     // (N_SPECIES, NX, NY, NZ), time t
              real* __restrict__ u_new,       // (N_SPECIES, NX, NY, NZ), time t + dt
              const real* __restrict__ maps,  // (N_MAPS, NX, NY, NZ), static
              real* __restrict__ sinks_out,   // (N_SPECIES, NX, NY, NZ): lambda of the species the
                                              // IMEX step needs it of (others not written)
              const real t,
              const real dt SYSTEMIC_PARAMS)
{
    const long long idx = (long long)blockIdx.x * BLOCK_SIZE + threadIdx.x;
    if (idx >= N_CELLS) return;
    const int k = (int)(idx % NZ);
    const int j = (int)((idx / NZ) % NY);
    const int i = (int)(idx / ((long long)NY * NZ));
    model_update(u, u_new, maps, sinks_out, idx, i, j, k, t, dt SYSTEMIC_ARGS);
}
