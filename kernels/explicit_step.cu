// Forward-Euler step of every species in ONE launch: diffusion, upwind chemotaxis
// and the reaction terms, fused; reads u (n_species x N) and writes u_new.
//
// Python caller: solver/backends/cupy_backend.py (CupyExplicitStepper.step), through
// solver/backends/cuda_codegen.py, which prepends the #define block (NX, NY, NZ,
// N_CELLS, INV_HX2.., `real`) and the generated device function `model_update`.
// SYSTEMIC_PARAMS / SYSTEMIC_ARGS (also generated) pass the systemic scalars (plasma
// drug levels, circulating cells) by value: no host-to-device copy per step.
// Launch shape (cuda_codegen.launch_shape): one thread per cell, 3-D blocks of
// BLOCK_Z x BLOCK_Y x BLOCK_X cells along (z, y, x) (threadIdx.x runs along z, e.g. 32 x 8
// x 1), grid ceil(NZ / BLOCK_Z) x ceil(NY / BLOCK_Y) x ceil(NX / BLOCK_X). The flat index
// runs fastest along z, so a warp touches one contiguous row (coalesced) in every array,
// and the y-neighbour rows of a block are rows the block itself reads (L1 hits).

extern "C" __global__ void __launch_bounds__(BLOCK_SIZE)
explicit_step(const real* __restrict__ u,     // (N_SPECIES, NX, NY, NZ), time t
              real* __restrict__ u_new,       // (N_SPECIES, NX, NY, NZ), time t + dt
              const real* __restrict__ maps,  // (N_MAPS, NX, NY, NZ), static
              real* __restrict__ sinks_out,   // (N_SPECIES, NX, NY, NZ): lambda of the species the
                                              // IMEX step needs it of (others not written)
              const real t,
              const real dt SYSTEMIC_PARAMS)
{
    const int k = blockIdx.x * BLOCK_Z + threadIdx.x;
    const int j = blockIdx.y * BLOCK_Y + threadIdx.y;
    const int i = blockIdx.z * BLOCK_X + threadIdx.z;
    if (k >= NZ || j >= NY || i >= NX) return;
    const long long idx = ((long long)i * NY + j) * NZ + k;
    model_update(u, u_new, maps, sinks_out, idx, i, j, k, t, dt SYSTEMIC_ARGS);
}
