// The cluster row kernel (sm_90): one row per thread-block cluster, each block of the cluster
// owning a contiguous slice of the row. A block copies its slice of S (and of T) into its shared
// memory with bulk copies (the copy engine, completing on mbarriers), and every pass then reads the
// slice from there: S and T leave HBM once and dS is written once, the 3·N·V·b floor, whatever
// the L2 holds. The row statistics (the pass-1 accumulator, the JSD and top-k sums, the bad-index
// flag) are merged across the cluster through distributed shared memory in rank order, so every
// block gets bit-identical values and the loss stays deterministic. The arithmetic is
// RowKernel's, unchanged; only the part of the row a block handles differs from BlockRow.
#pragma once

#include "cluster_primitives.cuh"
#include "distill_loss_kernels.cuh"

namespace sdvp {
namespace cuda_detail {

constexpr int kMaxClusterSize = 16;  // 8 is the portable limit; 16 needs the non-portable opt-in
constexpr int kStagePieces = 4;      // bulk copies per tensor, each completing on its own mbarrier
// Cluster-wide merges per row: the bad-index flag (top-k), pass 1, the JSD or top-k sums.
constexpr int kExchangeSlots = 3;

// One value a block publishes to its cluster (the largest is RowAcc).
struct alignas(16) ExchangeSlot {
  unsigned char bytes[48];
};
static_assert(sizeof(RowAcc) <= sizeof(ExchangeSlot), "RowAcc fits an exchange slot");

// Offsets into the cluster kernel's dynamic shared memory. The host sizes the launch with the same
// function, so the two always agree.
struct ClusterSmemLayout {
  size_t scratch, slots, gathered, bars, bitmap, s_stage, t_stage, total;
};

__host__ __device__ inline size_t align16(size_t n) { return (n + 15) / 16 * 16; }

__host__ __device__ inline ClusterSmemLayout cluster_smem_layout(int64_t stage_vectors,
                                                                 bool teacher,
                                                                 int64_t bitmap_words) {
  ClusterSmemLayout l;
  size_t at = 0;
  l.scratch = at;
  at += align16(sizeof(RowScratch));
  l.slots = at;
  at += kExchangeSlots * sizeof(ExchangeSlot);
  l.gathered = at;
  at += kMaxClusterSize * sizeof(ExchangeSlot);
  l.bars = at;
  at += align16(kStagePieces * sizeof(uint64_t));
  l.bitmap = at;
  at += align16(static_cast<size_t>(bitmap_words) * sizeof(uint32_t));
  l.s_stage = at;
  at += static_cast<size_t>(stage_vectors) * sizeof(uint4);
  l.t_stage = at;
  at += teacher ? static_cast<size_t>(stage_vectors) * sizeof(uint4) : 0;
  l.total = at;
  return l;
}

// One block's slice of a row: the RowKernel "part" interface (see BlockRow). With co-aligned
// rows the row's 16-byte vectors are split evenly across the cluster and staged; the scalar head
// goes to rank 0 and the scalar tail to the last rank, both read from global memory (at most
// 2 * (16 / b - 1) elements per row). Without co-alignment every element is a scalar: the row is
// split evenly and nothing is staged (correct, not fast; the automatic choice avoids it).
template <DType D>
struct ClusterSlice {
  using St = Storage<D>;
  using Scalar = typename St::Scalar;
  static constexpr int kVec = St::kVec;

  const Scalar* s;
  const Scalar* t;
  Scalar* g;
  int64_t head_begin, head_end;  // scalar elements before the vectors, read from global memory
  int64_t vec_origin;            // row element of the row's first 16-byte vector
  int64_t vec_begin, vec_end;    // this block's vectors (counted from vec_origin), staged
  int64_t tail_begin, tail_end;  // scalar elements after the vectors, read from global memory
  int64_t own_begin, own_end;    // the row elements this block owns
  uint4* s_stage;
  uint4* t_stage;
  uint64_t* bars;
  uint32_t* bitmap;  // top-k membership of [bitmap_base, own_end); bitmap_base = own_begin & ~31
  int64_t bitmap_base, bitmap_words;
  ExchangeSlot* slots;
  ExchangeSlot* gathered;
  int exchanges;
  bool pending;  // this thread has arrived on the cluster barrier after its last peer reads
  unsigned rank, size;

  __device__ __forceinline__ void init(const KernelParams& p, const RowPointers<D>& rp,
                                       unsigned char* smem, const ClusterSmemLayout& lay,
                                       unsigned block_rank, unsigned blocks) {
    s = rp.s;
    t = rp.t;
    g = rp.g;
    rank = block_rank;
    size = blocks;
    const int64_t V = p.vocab;
    const RowLayout l = row_layout<D>(s, V, p.co_aligned);
    vec_origin = l.head;
    vec_begin = l.nvec * rank / size;
    vec_end = l.nvec * (rank + 1) / size;
    const bool last = rank + 1 == size;
    if (p.co_aligned) {
      head_begin = 0;
      head_end = rank == 0 ? l.head : 0;
      tail_begin = l.tail_begin;
      tail_end = last ? V : l.tail_begin;
      own_begin = rank == 0 ? 0 : vec_origin + vec_begin * kVec;
      own_end = last ? V : vec_origin + vec_end * kVec;
    } else {
      head_begin = own_begin = V * rank / size;
      head_end = own_end = V * (rank + 1) / size;
      tail_begin = tail_end = V;
    }
    s_stage = reinterpret_cast<uint4*>(smem + lay.s_stage);
    t_stage = reinterpret_cast<uint4*>(smem + lay.t_stage);
    bars = reinterpret_cast<uint64_t*>(smem + lay.bars);
    bitmap = reinterpret_cast<uint32_t*>(smem + lay.bitmap);
    bitmap_base = own_begin & ~int64_t{31};
    bitmap_words = ((own_end - bitmap_base + 31) >> 5) + 1;  // + the zero word funnel shifts read
    slots = reinterpret_cast<ExchangeSlot*>(smem + lay.slots);
    gathered = reinterpret_cast<ExchangeSlot*>(smem + lay.gathered);
    exchanges = 0;
    pending = false;
  }

  __device__ __forceinline__ bool owns(int64_t j) const { return j >= own_begin && j < own_end; }
  __device__ __forceinline__ bool leader() const { return rank == 0 && threadIdx.x == 0; }

  // S at an owned element: from the staged slice when it is there (after pass 1 it always is).
  __device__ __forceinline__ float student(int64_t j) const {
    const int64_t first = vec_origin + vec_begin * kVec;
    const int64_t k = j - first;
    if (k >= 0 && j < vec_origin + vec_end * kVec)
      return St::load(reinterpret_cast<const Scalar*>(s_stage) + k);
    return St::load(s + j);
  }

  __device__ __forceinline__ uint32_t* member_word(int64_t j) const {
    return bitmap + ((j - bitmap_base) >> 5);
  }
  template <int N>
  __device__ __forceinline__ uint32_t outside(int64_t j0) const {
    return outside_bits<N>(bitmap, j0 - bitmap_base);  // bitmap_base is a multiple of 32
  }
  __device__ __forceinline__ void clear_bitmap() const {
    for (int64_t w = threadIdx.x; w < bitmap_words; w += blockDim.x) bitmap[w] = 0u;
  }

  // Vectors [a, b) of this block's slice form piece k.
  __device__ __forceinline__ int64_t piece_start(int k) const {
    return (vec_end - vec_begin) * k / kStagePieces;
  }

  // Thread 0 starts the bulk copies of the slice, one mbarrier per piece, so the block can work on
  // the first piece while the others are still arriving.
  __device__ __forceinline__ void stage() const {
    if (threadIdx.x == 0) {
      for (int k = 0; k < kStagePieces; ++k) mbar_init(&bars[k], 1);
      mbar_init_fence();
    }
    __syncthreads();
    if (threadIdx.x != 0) return;
    const uint64_t policy = evict_first_policy();  // each byte is read once
    const uint4* sv = as_vectors(s + vec_origin) + vec_begin;
    const uint4* tv = t ? as_vectors(t + vec_origin) + vec_begin : nullptr;
    for (int k = 0; k < kStagePieces; ++k) {
      const int64_t a = piece_start(k), b = piece_start(k + 1);
      const uint32_t bytes = static_cast<uint32_t>((b - a) * static_cast<int64_t>(sizeof(uint4)));
      mbar_expect_tx(&bars[k], t ? 2 * bytes : bytes);
      if (bytes == 0) continue;
      bulk_load(s_stage + a, sv + a, bytes, &bars[k], policy);
      if (t) bulk_load(t_stage + a, tv + a, bytes, &bars[k], policy);
    }
  }

  // f(j, x[1], y[1]) over the scalar head and tail this block owns.
  template <bool kTeacher, class F>
  __device__ __forceinline__ void scalars(F&& f) const {
    const int tid = static_cast<int>(threadIdx.x), bs = static_cast<int>(blockDim.x);
    auto one = [&](int64_t j) {
      float x[1] = {St::load(s + j)};
      float y[1] = {kTeacher ? St::load(t + j) : 0.f};
      f(j, x, y);
    };
    for (int64_t j = head_begin + tid; j < head_end; j += bs) one(j);
    for (int64_t j = tail_begin + tid; j < tail_end; j += bs) one(j);
  }

  // f(j0, x[kVec], y[kVec], v) over the staged vectors, piece by piece as they land.
  template <bool kTeacher, class F>
  __device__ __forceinline__ void vectors(F&& f) const {
    const int tid = static_cast<int>(threadIdx.x), bs = static_cast<int>(blockDim.x);
    for (int k = 0; k < kStagePieces; ++k) {
      const int64_t a = piece_start(k), b = piece_start(k + 1);
      if (a == b) continue;
      mbar_wait(&bars[k], 0);  // phase 0: each barrier completes once per row
      for (int64_t v = a + tid; v < b; v += bs) {
        float x[kVec], y[kVec];
        unpack_pair<D, kTeacher>(s_stage[v], kTeacher ? t_stage[v] : s_stage[v], x, y);
        f(vec_origin + (vec_begin + v) * kVec, x, y, v);
      }
    }
  }

  template <bool kTeacher, bool kBackward, class F>
  __device__ __forceinline__ void read(F&& f) const {
    scalars<kTeacher>(f);
    vectors<kTeacher>([&](int64_t j0, const auto& x, const auto& y, int64_t) { f(j0, x, y); });
  }

  template <bool kTeacher, class F>
  __device__ __forceinline__ void write(F&& f) const {
    // In place (g == s) a scalar is read and then written by the same thread; vectors come from
    // the staged copy, and no other block reads this slice.
    scalars<kTeacher>([&](int64_t j, const auto& x, const auto& y) {
      float out[1];
      f(j, x, y, out);
      St::store(g + j, out[0]);
    });
    uint4* gv = reinterpret_cast<uint4*>(g + vec_origin) + vec_begin;
    vectors<kTeacher>([&](int64_t j0, const auto& x, const auto& y, int64_t v) {
      float out[kVec];
      f(j0, x, y, out);
      __stcs(gv + v, St::pack(out));
    });
  }

  __device__ __forceinline__ void fill(float value) const {
    const int tid = static_cast<int>(threadIdx.x), bs = static_cast<int>(blockDim.x);
    for (int64_t j = head_begin + tid; j < head_end; j += bs) St::store(g + j, value);
    for (int64_t j = tail_begin + tid; j < tail_end; j += bs) St::store(g + j, value);
    float vals[kVec];
#pragma unroll
    for (int i = 0; i < kVec; ++i) vals[i] = value;
    const uint4 packed = St::pack(vals);
    uint4* gv = reinterpret_cast<uint4*>(g + vec_origin);
    for (int64_t v = vec_begin + tid; v < vec_end; v += bs) __stcs(gv + v, packed);
  }

  // Merges one block-uniform value over the cluster: each block publishes its value in its own
  // slot (a new slot per merge, so no block overwrites what a peer may still be reading), the
  // cluster barrier makes the slots visible, and every thread folds the blocks' values in rank
  // order. The arrive after the peer reads is matched by the next merge's wait or by finish(), so
  // no block leaves while a peer still reads its shared memory.
  template <class T, class Merge>
  __device__ __forceinline__ T cluster_merge(const T& mine, Merge merge) {
    static_assert(sizeof(T) <= sizeof(ExchangeSlot), "a merged value fits an exchange slot");
    T* slot = reinterpret_cast<T*>(&slots[exchanges++]);
    if (threadIdx.x == 0) *slot = mine;
    if (pending) cluster_wait();
    cluster_arrive();
    cluster_wait();
    if (threadIdx.x < size) {
      *reinterpret_cast<T*>(&gathered[threadIdx.x]) = *peer_shared(slot, threadIdx.x);
    }
    __syncthreads();
    T r = *reinterpret_cast<const T*>(&gathered[0]);
    for (unsigned k = 1; k < size; ++k) r = merge(r, *reinterpret_cast<const T*>(&gathered[k]));
    __syncthreads();  // every thread has read `gathered` before the next merge refills it
    cluster_arrive_relaxed();
    pending = true;
    return r;
  }

  template <class T, class Merge>
  __device__ __forceinline__ T allreduce(T v, Merge merge, T* scratch) {
    const T mine = block_allreduce(v, merge, scratch);
    return size == 1 ? mine : cluster_merge(mine, merge);
  }

  __device__ __forceinline__ bool any(bool block_flag) {
    if (size == 1) return block_flag;
    const uint32_t flag = block_flag ? 1u : 0u;
    return cluster_merge(flag, [](uint32_t a, uint32_t b) { return a | b; }) != 0u;
  }

  __device__ __forceinline__ void finish() {
    if (pending) cluster_wait();
    pending = false;
  }
};

// One row per cluster of cluster_size() blocks, launched with a cluster dimension by
// distill_loss_cuda.cu (only on sm_90 and newer: on older targets the body is a trap).
template <DType D, TeacherKind TK, Divergence DV>
__global__ void __launch_bounds__(kMaxThreads, kMinBlocksPerSm)
    distill_cluster_kernel(KernelParams p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
  __trap();
#else
  unsigned char* smem = dynamic_smem();
  const ClusterSmemLayout lay =
      cluster_smem_layout(p.stage_vectors, TK == TeacherKind::kDense, p.slice_bitmap_words);
  const int64_t row = cluster_index();
  ClusterSlice<D> part;
  part.init(p, row_pointers<D>(p, row), smem, lay, cluster_rank(), cluster_size());
  RowKernel<D, TK, DV>::run_row(p, row, part, *reinterpret_cast<RowScratch*>(smem + lay.scratch));
  part.finish();
#endif
}

}  // namespace cuda_detail
}  // namespace sdvp
