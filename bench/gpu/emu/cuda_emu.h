// A CPU stand-in for the CUDA features the distillation kernels use, so that the harness can check
// the kernels' logic (block reductions, barriers, head/tail handling, in-place order) on a machine
// without a GPU. Each CUDA thread of a block is an OS thread; blocks run one after another; warps
// exchange values through a per-warp barrier. It is a logic check, not a model of performance or of
// fast-math rounding.
#pragma once

#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
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

struct Block {
  int threads = 0;
  std::unique_ptr<std::barrier<>> block_barrier;
  std::vector<std::unique_ptr<std::barrier<>>> warp_barriers;
  std::vector<uint64_t> lanes;
  std::atomic<int> or_flags[2];
  std::vector<unsigned char> dynamic_smem;
};

inline Block*& current_block() {
  static Block* block = nullptr;
  return block;
}

inline thread_local int or_phase = 0;

template <class T>
T* dynamic_shared() {
  return reinterpret_cast<T*>(current_block()->dynamic_smem.data());
}

}  // namespace emu

inline thread_local emu::Dim3 threadIdx, blockIdx, blockDim, gridDim;

inline void __syncthreads() { emu::current_block()->block_barrier->arrive_and_wait(); }

inline int __syncthreads_or(int predicate) {
  emu::Block* b = emu::current_block();
  const int phase = emu::or_phase;
  emu::or_phase ^= 1;
  if (predicate) b->or_flags[phase].fetch_or(1);
  b->block_barrier->arrive_and_wait();
  const int result = b->or_flags[phase].load();
  b->block_barrier->arrive_and_wait();
  if (threadIdx.x == 0) b->or_flags[phase].store(0);  // this slot is next used two calls later
  return result;
}

template <class T>
inline T __shfl_xor_sync(unsigned, T value, int lane_mask) {
  static_assert(sizeof(T) <= 8, "one 64-bit lane slot");
  emu::Block* b = emu::current_block();
  const unsigned tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  b->lanes[tid] = bits;
  b->warp_barriers[warp]->arrive_and_wait();
  const uint64_t other = b->lanes[warp * 32 + (lane ^ static_cast<unsigned>(lane_mask))];
  b->warp_barriers[warp]->arrive_and_wait();
  T out;
  std::memcpy(&out, &other, sizeof(T));
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

// Runs kernel<<<grid, block, smem>>>(params): `block` OS threads walk the grid's blocks in order.
template <class Params>
void launch(void (*kernel)(Params), int64_t grid, int block, size_t smem, const Params& params) {
  Block b;
  b.threads = block;
  b.block_barrier = std::make_unique<std::barrier<>>(block);
  for (int w = 0; w < block / 32; ++w)
    b.warp_barriers.push_back(std::make_unique<std::barrier<>>(32));
  b.lanes.assign(static_cast<size_t>(block), 0);
  b.or_flags[0] = 0;
  b.or_flags[1] = 0;
  // Garbage, as on a GPU, so that code relying on zeroed shared memory fails here too.
  b.dynamic_smem.assign(smem + 16, 0xA5);
  current_block() = &b;
  std::vector<std::thread> threads;
  for (int t = 0; t < block; ++t) {
    threads.emplace_back([&, t] {
      threadIdx.x = static_cast<unsigned>(t);
      blockDim.x = static_cast<unsigned>(block);
      gridDim.x = static_cast<unsigned>(grid);
      emu::or_phase = 0;
      for (int64_t g = 0; g < grid; ++g) {
        blockIdx.x = static_cast<unsigned>(g);
        kernel(params);
        b.block_barrier->arrive_and_wait();
      }
    });
  }
  for (auto& th : threads) th.join();
  current_block() = nullptr;
}

}  // namespace emu
