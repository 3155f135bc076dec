// Data-parallel training over a ProcessGroup: the summary every rank exchanges before it updates
// (loss, row counts, which ranks failed, what each trains), the bucketed all-reduce of the
// gradients, and the broadcast of a model's state from rank 0 when it joins a group.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "distributed.h"
#include "optimizers.h"
#include "process_group_impl.h"

namespace sdvp::torch_runtime {

// The group's row counts of a step, exchanged while this rank runs its first forward pass.
struct RowCountExchange {
  ProcessGroup::Impl::Pending pending;
  at::Tensor counts;  // [valid rows, rows], summed over the ranks once finished
};
RowCountExchange start_row_count_exchange(ProcessGroup& group, int64_t valid_rows, int64_t rows);
// The group's (valid rows, rows).
std::pair<int64_t, int64_t> finish_row_count_exchange(ProcessGroup& group,
                                                      RowCountExchange& exchange);

// What one rank did in a step, before anything is updated.
struct LocalStepSummary {
  enum Status : int32_t { kOk = 0, kNonFiniteLoss = 1, kFailed = 2 };
  double loss = 0;  // this rank's rows' part of the loss (with the group's normaliser)
  int64_t valid_rows = 0;
  int64_t rows = 0;
  Status status = kOk;
  double fingerprint = 0;  // of the trainable parameters' names and shapes
};

// The group's sums, and the ranks that cannot take the step.
struct GroupStepSummary {
  double loss = 0;
  int64_t valid_rows = 0;
  int64_t rows = 0;
  std::vector<int32_t> non_finite;  // ranks whose loss was not finite
  std::vector<int32_t> failed;      // ranks whose forward or backward failed
  std::vector<int32_t> mismatched;  // ranks training other parameters than rank 0
  int64_t bytes = 0;                // the summary's payload
};

// An exact-in-double hash (52 bits) of the names and shapes of `parameters`.
double structure_fingerprint(const NamedTensors& parameters);

// All-reduces every rank's summary (one small collective).
GroupStepSummary exchange_step_summary(ProcessGroup& group, const LocalStepSummary& local);

struct GradientSyncStats {
  int64_t bytes = 0;  // payload all-reduced by this rank (gradients and the has-gradient flags)
  int32_t buckets = 0;
};

// Sums the gradients of `parameters` (the trainable ones, in the same order on every rank) over
// the ranks in flat buckets of at most `bucket_bytes`, all issued at once. A parameter without a
// gradient here counts as zeros; one without a gradient on every rank is left without one (as a
// single process would).
GradientSyncStats all_reduce_gradients(ProcessGroup& group,
                                       const std::vector<at::Tensor>& parameters,
                                       int64_t bucket_bytes);

// Makes every rank's copy of a model equal rank 0's: checks that all ranks hold the same tensors
// (names, shapes, types) at the same optimizer step (ERR_SDVP_DIST_CONFIG naming the ranks that
// differ), then broadcasts the values of `state` (parameters and buffers) from rank 0.
void broadcast_model_state(ProcessGroup& group, const NamedTensors& state, int64_t step);

// "1, 3"
std::string rank_list(const std::vector<int32_t>& ranks);

}  // namespace sdvp::torch_runtime
