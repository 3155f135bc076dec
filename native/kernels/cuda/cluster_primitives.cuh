// The sm_90 features the cluster row kernel uses, behind small functions: the block's rank in its
// thread-block cluster, a peer block's shared memory (DSMEM), the split cluster barrier, and 1-D
// bulk copies from global into shared memory that complete on an mbarrier. The CPU emulation of
// bench/gpu/emu provides the same functions, so the kernel's source is the same in both builds.
#pragma once

#include <cstdint>

#ifdef SDVP_CUDA_EMULATE
#include "cuda_emu.h"

namespace sdvp::cuda_detail {

inline unsigned cluster_rank() { return emu::cluster_rank(); }
inline unsigned cluster_size() { return emu::cluster_size(); }
inline unsigned cluster_index() { return emu::cluster_index(); }
template <class T>
inline T* peer_shared(T* local, unsigned rank) {
  return emu::peer_shared(local, rank);
}
inline void cluster_arrive() { emu::cluster_arrive(); }
inline void cluster_arrive_relaxed() { emu::cluster_arrive(); }
inline void cluster_wait() { emu::cluster_wait(); }
inline void mbar_init(uint64_t* bar, uint32_t count) { emu::mbar_init(bar, count); }
inline void mbar_init_fence() { emu::mbar_init_fence(); }
inline void mbar_expect_tx(uint64_t* bar, uint32_t bytes) { emu::mbar_expect_tx(bar, bytes); }
inline uint64_t evict_first_policy() { return emu::evict_first_policy(); }
inline void bulk_load(void* dst, const void* src, uint32_t bytes, uint64_t* bar, uint64_t policy) {
  emu::bulk_load(dst, src, bytes, bar, policy);
}
inline void mbar_wait(uint64_t* bar, uint32_t parity) { emu::mbar_wait(bar, parity); }

}  // namespace sdvp::cuda_detail

#else
#include <cuda_runtime.h>

namespace sdvp::cuda_detail {

__device__ __forceinline__ unsigned cluster_rank() { return __clusterRelativeBlockRank(); }
__device__ __forceinline__ unsigned cluster_size() { return __clusterSizeInBlocks(); }
__device__ __forceinline__ unsigned cluster_index() { return __clusterIdx().x; }

// The address of the same shared-memory object in the block of rank `rank` of this cluster.
template <class T>
__device__ __forceinline__ T* peer_shared(T* local, unsigned rank) {
  return static_cast<T*>(__cluster_map_shared_rank(static_cast<void*>(local), rank));
}

// barrier.cluster.arrive (release) and barrier.cluster.wait (acquire): shared-memory writes made
// before the arrive are visible to every thread of the cluster after its wait.
__device__ __forceinline__ void cluster_arrive() { __cluster_barrier_arrive(); }
// An arrive without the release: for "my reads of my peers are done" (the values are already in
// registers), which orders nothing but a peer's exit.
__device__ __forceinline__ void cluster_arrive_relaxed() { __cluster_barrier_arrive_relaxed(); }
__device__ __forceinline__ void cluster_wait() { __cluster_barrier_wait(); }

__device__ __forceinline__ uint32_t shared_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void mbar_init(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(shared_address(bar)), "r"(count)
               : "memory");
}

// Makes initialised mbarriers visible to the copy engine (the async proxy) before any copy that
// completes on them is issued; a __syncthreads() after it publishes them to the block's threads.
__device__ __forceinline__ void mbar_init_fence() {
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}

// One arrival that also announces `bytes` of copies completing on this phase.
__device__ __forceinline__ void mbar_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(shared_address(bar)),
               "r"(bytes)
               : "memory");
}

// An L2 policy for data read exactly once: evict it first.
__device__ __forceinline__ uint64_t evict_first_policy() {
  uint64_t policy;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
  return policy;
}

// Copies `bytes` (a multiple of 16; both addresses 16-byte aligned) from global memory into this
// block's shared memory on the copy engine; the transfer counts down the mbarrier's transaction
// bytes.
__device__ __forceinline__ void bulk_load(void* dst, const void* src, uint32_t bytes, uint64_t* bar,
                                          uint64_t policy) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], "
      "[%1], %2, [%3], %4;" ::"r"(shared_address(dst)),
      "l"(static_cast<uint64_t>(__cvta_generic_to_global(src))), "r"(bytes),
      "r"(shared_address(bar)), "l"(policy)
      : "memory");
}

// Waits until the phase of parity `parity` of the mbarrier has completed.
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n .reg .pred ready;\n mbarrier.try_wait.parity.shared::cta.b64 ready, [%1], %2;\n"
        " selp.u32 %0, 1, 0, ready;\n}"
        : "=r"(done)
        : "r"(shared_address(bar)), "r"(parity)
        : "memory");
  } while (done == 0);
}

}  // namespace sdvp::cuda_detail

#endif
