// A CPU stand-in for the CUDA features the distillation kernels use, so that the harness can check
// the kernels' logic (block and cluster reductions, barriers, head/tail handling, in-place order,
// staged rows) on a machine without a GPU. Each CUDA thread is an OS thread; the blocks of one
// thread-block cluster run at the same time (each with its own shared memory, which its peers reach
// through peer_shared), clusters run one after another; warps exchange values through a per-warp
// barrier. mbarriers and 1-D bulk copies are emulated by counters and memcpy. Only a few of the
// threads run at a time (a permit each, SDVP_EMU_THREADS, default 2, handed back while a thread
// waits at a barrier), so a 16-block cluster's 2048 threads do not crowd out a shared machine. It
// is a logic check, not a model of performance or of fast-math rounding.
#pragma once

#include <array>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <semaphore>
#include <thread>
#include <vector>

#define __device__
#define __host__
#define __global__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define CUDART_VERSION 0

struct uint4 {
  uint32_t x, y, z, w;
};
inline uint4 make_uint4(uint32_t x, uint32_t y, uint32_t z, uint32_t w) { return {x, y, z, w}; }

using cudaStream_t = void*;
enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorNoDevice = 100 };
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
inline const char* cudaGetErrorString(cudaError_t e) {
  return e == cudaSuccess ? "no error" : "emulated error";
}

namespace emu {

struct Dim3 {
  unsigned x = 0, y = 0, z = 0;
};

struct Cluster;

struct Block {
  int threads = 0;
  Cluster* cluster = nullptr;
  std::unique_ptr<std::barrier<>> block_barrier;
  std::vector<std::unique_ptr<std::barrier<>>> warp_barriers;
  std::vector<std::array<unsigned char, 64>> lanes;  // one shuffled value per thread
  std::atomic<int> or_flags[2];
  std::vector<unsigned char> dynamic_smem;
};

// The blocks of one cluster and the barrier all their threads share (barrier.cluster).
struct Cluster {
  unsigned size = 1;
  std::vector<std::unique_ptr<Block>> blocks;
  std::unique_ptr<std::barrier<>> barrier;
};

inline thread_local Block* current = nullptr;
inline thread_local unsigned current_rank = 0;
inline thread_local unsigned current_cluster = 0;
inline thread_local int or_phase = 0;
inline thread_local std::optional<std::barrier<>::arrival_token> cluster_token;

inline Block* current_block() { return current; }

// Permits to run: a thread holds one while it computes and hands it back while it blocks.
inline std::counting_semaphore<64>& run_permits() {
  static std::counting_semaphore<64> permits([] {
    const char* v = std::getenv("SDVP_EMU_THREADS");
    const long n = v ? std::strtol(v, nullptr, 10) : 2;
    return static_cast<std::ptrdiff_t>(n < 1 ? 1 : n > 64 ? 64 : n);
  }());
  return permits;
}

// Runs a blocking wait without holding a permit.
template <class F>
void blocking(F&& wait) {
  run_permits().release();
  wait();
  run_permits().acquire();
}

template <class T>
T* dynamic_shared() {
  return reinterpret_cast<T*>(current->dynamic_smem.data());
}

[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "cuda_emu: %s\n", what);
  std::abort();
}

}  // namespace emu

inline thread_local emu::Dim3 threadIdx, blockIdx, blockDim, gridDim;

inline void __syncthreads() {
  emu::blocking([] { emu::current_block()->block_barrier->arrive_and_wait(); });
}

inline int __syncthreads_or(int predicate) {
  emu::Block* b = emu::current_block();
  const int phase = emu::or_phase;
  emu::or_phase ^= 1;
  if (predicate) b->or_flags[phase].fetch_or(1);
  emu::blocking([b] { b->block_barrier->arrive_and_wait(); });
  const int result = b->or_flags[phase].load();
  emu::blocking([b] { b->block_barrier->arrive_and_wait(); });
  if (threadIdx.x == 0) b->or_flags[phase].store(0);  // this slot is next used two calls later
  return result;
}

// Any trivially copyable value up to 64 bytes (the kernels' shfl_xor_struct shuffles a whole struct
// in one call here, where every exchange costs two barrier waits, instead of word by word).
template <class T>
inline T __shfl_xor_sync(unsigned, T value, int lane_mask) {
  static_assert(sizeof(T) <= 64, "one 64-byte lane slot");
  emu::Block* b = emu::current_block();
  const unsigned tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  std::memcpy(b->lanes[tid].data(), &value, sizeof(T));
  emu::blocking([b, warp] { b->warp_barriers[warp]->arrive_and_wait(); });
  T out;
  std::memcpy(&out, b->lanes[warp * 32 + (lane ^ static_cast<unsigned>(lane_mask))].data(),
              sizeof(T));
  emu::blocking([b, warp] { b->warp_barriers[warp]->arrive_and_wait(); });
  return out;
}

inline unsigned long long atomicMin(unsigned long long* address, unsigned long long value) {
  std::atomic_ref<unsigned long long> ref(*address);
  unsigned long long old = ref.load();
  while (value < old && !ref.compare_exchange_weak(old, value)) {
  }
  return old;
}

inline unsigned atomicOr(unsigned* address, unsigned value) {
  return std::atomic_ref<unsigned>(*address).fetch_or(value);
}

inline float __uint_as_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint32_t __float_as_uint(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float __int_as_float(int32_t i) { return __uint_as_float(static_cast<uint32_t>(i)); }
inline float __log2f(float x) { return std::log2(x); }
inline uint4 __ldcs(const uint4* p) { return *p; }
inline void __stcs(uint4* p, uint4 v) { *p = v; }
inline uint32_t __funnelshift_r(uint32_t lo, uint32_t hi, uint32_t shift) {
  const uint64_t both = (static_cast<uint64_t>(hi) << 32) | lo;
  return static_cast<uint32_t>(both >> (shift & 31u));
}

struct __nv_bfloat16 {
  uint16_t bits;
};
struct __nv_bfloat162 {
  __nv_bfloat16 x, y;
};
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  uint32_t u = __float_as_uint(f);
  if (std::isnan(f)) return {0x7fc0};
  u += 0x7fffu + ((u >> 16) & 1u);
  return {static_cast<uint16_t>(u >> 16)};
}
inline uint16_t __bfloat16_as_ushort(__nv_bfloat16 h) { return h.bits; }
inline __nv_bfloat162 __floats2bfloat162_rn(float lo, float hi) {
  return {__float2bfloat16_rn(lo), __float2bfloat16_rn(hi)};
}

namespace emu {

// ---- thread-block clusters (sm_90)
// -----------------------------------------------------------------

inline unsigned cluster_rank() { return current_rank; }
inline unsigned cluster_size() { return current->cluster->size; }
inline unsigned cluster_index() { return current_cluster; }

// The same offset in a peer block's dynamic shared memory. Only dynamic shared memory is per
// block here (a static __shared__ variable is one object for every block), so anything a peer
// reads must live there.
template <class T>
T* peer_shared(T* local, unsigned rank) {
  Block* self = current;
  const auto* base = self->dynamic_smem.data();
  const auto* p = reinterpret_cast<const unsigned char*>(local);
  if (p < base || p >= base + self->dynamic_smem.size())
    fail("peer_shared: not an address in this block's dynamic shared memory");
  if (rank >= self->cluster->size) fail("peer_shared: rank outside the cluster");
  Block* peer = self->cluster->blocks[rank].get();
  return reinterpret_cast<T*>(peer->dynamic_smem.data() + (p - base));
}

inline void cluster_arrive() {
  if (cluster_token) fail("barrier.cluster.arrive twice without a wait");
  cluster_token.emplace(current->cluster->barrier->arrive());
}

inline void cluster_wait() {
  if (!cluster_token) fail("barrier.cluster.wait without an arrive");
  blocking([] { current->cluster->barrier->wait(std::move(*cluster_token)); });
  cluster_token.reset();
}

// ---- mbarriers and bulk copies
// ------------------------------------------------------------------------ One phase only (the
// kernels wait for parity 0): word 0 counts the arrivals still expected, word 1 the transaction
// bytes still expected.

inline std::atomic_ref<int32_t> mbar_word(uint64_t* bar, int i) {
  return std::atomic_ref<int32_t>(reinterpret_cast<int32_t*>(bar)[i]);
}

inline void mbar_init(uint64_t* bar, uint32_t count) {
  mbar_word(bar, 1).store(0);
  mbar_word(bar, 0).store(static_cast<int32_t>(count));
}

inline void mbar_init_fence() { std::atomic_thread_fence(std::memory_order_seq_cst); }

inline void mbar_notify(uint64_t* bar) {
  mbar_word(bar, 0).notify_all();
  mbar_word(bar, 1).notify_all();
}

inline void mbar_expect_tx(uint64_t* bar, uint32_t bytes) {
  mbar_word(bar, 1).fetch_add(static_cast<int32_t>(bytes));
  mbar_word(bar, 0).fetch_sub(1);
  mbar_notify(bar);
}

inline uint64_t evict_first_policy() { return 0; }

inline void bulk_load(void* dst, const void* src, uint32_t bytes, uint64_t* bar, uint64_t) {
  if (bytes % 16 != 0 || reinterpret_cast<uintptr_t>(dst) % 16 != 0 ||
      reinterpret_cast<uintptr_t>(src) % 16 != 0) {
    fail("cp.async.bulk needs 16-byte aligned addresses and a multiple of 16 bytes");
  }
  std::memcpy(dst, src, bytes);
  mbar_word(bar, 1).fetch_sub(static_cast<int32_t>(bytes));
  mbar_notify(bar);
}

// Blocks (futex, no spinning: an emulated cluster has up to 4096 threads) until the phase
// completes. A barrier nobody completes hangs here, as it would on a GPU.
inline void mbar_wait(uint64_t* bar, uint32_t parity) {
  if (parity != 0) fail("mbar_wait: the emulation has one phase per barrier");
  for (;;) {
    const int32_t arrivals = mbar_word(bar, 0).load();
    if (arrivals != 0) {
      blocking([bar, arrivals] { mbar_word(bar, 0).wait(arrivals); });
      continue;
    }
    const int32_t bytes = mbar_word(bar, 1).load();
    if (bytes == 0) return;
    blocking([bar, bytes] { mbar_word(bar, 1).wait(bytes); });
  }
}

// ---- launches
// -----------------------------------------------------------------------------------------

// Runs kernel<<<grid, block, smem>>>(params) with clusters of `cluster` consecutive blocks:
// cluster * block OS threads walk the grid's clusters in order.
template <class Params>
void launch_cluster(void (*kernel)(Params), int64_t grid, int block, int cluster, size_t smem,
                    const Params& params) {
  if (cluster < 1 || grid % cluster != 0) fail("the grid is not a whole number of clusters");
  Cluster c;
  c.size = static_cast<unsigned>(cluster);
  c.barrier = std::make_unique<std::barrier<>>(cluster * block);
  for (int r = 0; r < cluster; ++r) {
    auto b = std::make_unique<Block>();
    b->threads = block;
    b->cluster = &c;
    b->block_barrier = std::make_unique<std::barrier<>>(block);
    for (int w = 0; w < block / 32; ++w)
      b->warp_barriers.push_back(std::make_unique<std::barrier<>>(32));
    b->lanes.resize(static_cast<size_t>(block));
    b->or_flags[0] = 0;
    b->or_flags[1] = 0;
    b->dynamic_smem.assign(smem + 16, 0xA5);
    c.blocks.push_back(std::move(b));
  }
  std::barrier<> between(cluster * block);  // between clusters, apart from the kernel's barriers
  const int64_t clusters = grid / cluster;
  std::vector<std::thread> threads;
  for (int t = 0; t < cluster * block; ++t) {
    threads.emplace_back([&, t] {
      const int rank = t / block;
      current = c.blocks[static_cast<size_t>(rank)].get();
      current_rank = static_cast<unsigned>(rank);
      threadIdx.x = static_cast<unsigned>(t % block);
      blockDim.x = static_cast<unsigned>(block);
      gridDim.x = static_cast<unsigned>(grid);
      or_phase = 0;
      run_permits().acquire();
      for (int64_t g = 0; g < clusters; ++g) {
        current_cluster = static_cast<unsigned>(g);
        blockIdx.x = static_cast<unsigned>(g * cluster + rank);
        blocking([&] { between.arrive_and_wait(); });
        kernel(params);
        if (cluster_token) fail("a thread left the kernel with a cluster barrier arrival pending");
        blocking([&] { between.arrive_and_wait(); });
        // Garbage again, as on a GPU, so that code relying on what the last cluster left fails.
        if (threadIdx.x == 0) std::memset(current->dynamic_smem.data(), 0xA5, smem + 16);
      }
      run_permits().release();
    });
  }
  for (auto& th : threads) th.join();
  current = nullptr;
}

// Runs kernel<<<grid, block, smem>>>(params): one block at a time (a cluster of one).
template <class Params>
void launch(void (*kernel)(Params), int64_t grid, int block, size_t smem, const Params& params) {
  launch_cluster(kernel, grid, block, 1, smem, params);
}

}  // namespace emu
