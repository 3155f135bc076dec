// The collectives of a data-parallel step (see gradient_sync.h): flat buckets per element type, all
// issued before any is waited, so the backend's threads overlap them.
#include "gradient_sync.h"

#include <c10/core/GradMode.h>

#include "process_group_impl.h"
#include "runtime_error.h"
#include "tensor_convert.h"

namespace sdvp::torch_runtime {

namespace {

// Parameters (by index) that travel in one flat tensor of one element type.
struct Bucket {
  c10::ScalarType type;
  std::vector<size_t> members;
  int64_t numel = 0;
};

// Consecutive tensors of one type, up to `cap_bytes` per bucket (a larger tensor gets its own).
std::vector<Bucket> plan_buckets(const std::vector<at::Tensor>& tensors, int64_t cap_bytes) {
  std::vector<Bucket> buckets;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const at::Tensor& tensor = tensors[i];
    const int64_t bytes = tensor.numel() * static_cast<int64_t>(tensor.element_size());
    if (buckets.empty() || buckets.back().type != tensor.scalar_type() ||
        (buckets.back().numel > 0 &&
         (buckets.back().numel * static_cast<int64_t>(tensor.element_size()) + bytes) >
             cap_bytes)) {
      buckets.push_back(Bucket{tensor.scalar_type(), {}, 0});
    }
    buckets.back().members.push_back(i);
    buckets.back().numel += tensor.numel();
  }
  return buckets;
}

uint64_t fnv1a(uint64_t hash, const void* data, size_t size) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < size; ++i) {
    hash ^= bytes[i];
    hash *= 1099511628211ULL;
  }
  return hash;
}

// A float64 host tensor of `values`, for the small exchanges.
at::Tensor doubles(const std::vector<double>& values, const at::Device& device) {
  return at::tensor(values, at::TensorOptions().dtype(at::kDouble)).to(device);
}

}  // namespace

std::string rank_list(const std::vector<int32_t>& ranks) {
  std::string out;
  for (int32_t rank : ranks) out += (out.empty() ? "" : ", ") + std::to_string(rank);
  return out;
}

double structure_fingerprint(const NamedTensors& parameters) {
  uint64_t hash = 1469598103934665603ULL;
  for (const auto& [name, tensor] : parameters) {
    hash = fnv1a(hash, name.data(), name.size() + 1);
    for (int64_t extent : tensor.sizes()) hash = fnv1a(hash, &extent, sizeof(extent));
    const int8_t type = static_cast<int8_t>(tensor.scalar_type());
    hash = fnv1a(hash, &type, 1);
  }
  return static_cast<double>(hash & ((1ULL << 52) - 1));
}

RowCountExchange start_row_count_exchange(ProcessGroup& group, int64_t valid_rows, int64_t rows) {
  ProcessGroup::Impl& impl = group.impl();
  RowCountExchange exchange;
  exchange.counts =
      doubles({static_cast<double>(valid_rows), static_cast<double>(rows)}, impl.device);
  exchange.pending = impl.start("row counts", [&](CollectiveBackend& backend) {
    std::vector<at::Tensor> tensors{exchange.counts};
    return std::vector<WorkHandle>{backend.all_reduce(tensors, c10d::ReduceOp::SUM)};
  });
  return exchange;
}

std::pair<int64_t, int64_t> finish_row_count_exchange(ProcessGroup& group,
                                                      RowCountExchange& exchange) {
  group.impl().finish(exchange.pending);
  const std::vector<double> sums = to_vector<double>(exchange.counts);
  return {static_cast<int64_t>(sums[0]), static_cast<int64_t>(sums[1])};
}

GroupStepSummary exchange_step_summary(ProcessGroup& group, const LocalStepSummary& local) {
  ProcessGroup::Impl& impl = group.impl();
  const int32_t world = group.world_size();
  const int32_t rank = group.rank();
  // [loss, valid rows, rows, status per rank, fingerprint per rank]: each slot is written by one
  // rank only, so the sums are exact.
  std::vector<double> values(3 + 2 * static_cast<size_t>(world), 0.0);
  values[0] = local.status == LocalStepSummary::kOk ? local.loss : 0.0;
  values[1] = static_cast<double>(local.valid_rows);
  values[2] = static_cast<double>(local.rows);
  values[3 + rank] = static_cast<double>(local.status);
  values[3 + world + rank] = local.fingerprint;
  at::Tensor summary = doubles(values, impl.device);
  impl.run("step summary", [&](CollectiveBackend& backend) {
    std::vector<at::Tensor> tensors{summary};
    return std::vector<WorkHandle>{backend.all_reduce(tensors, c10d::ReduceOp::SUM)};
  });
  const std::vector<double> sums = to_vector<double>(summary);
  GroupStepSummary out;
  out.bytes = summary.numel() * static_cast<int64_t>(summary.element_size());
  out.loss = sums[0];
  out.valid_rows = static_cast<int64_t>(sums[1]);
  out.rows = static_cast<int64_t>(sums[2]);
  for (int32_t r = 0; r < world; ++r) {
    const double status = sums[3 + r];
    if (status == LocalStepSummary::kNonFiniteLoss) out.non_finite.push_back(r);
    if (status == LocalStepSummary::kFailed) out.failed.push_back(r);
    if (sums[3 + world + r] != sums[3 + world]) out.mismatched.push_back(r);
  }
  return out;
}

GradientSyncStats all_reduce_gradients(ProcessGroup& group,
                                       const std::vector<at::Tensor>& parameters,
                                       int64_t bucket_bytes) {
  ProcessGroup::Impl& impl = group.impl();
  const c10::NoGradGuard no_grad;
  GradientSyncStats stats;
  if (parameters.empty()) return stats;  // the same on every rank (their fingerprints agree)
  // Which parameters have a gradient on this rank (summed: on any rank).
  std::vector<float> has_grad(parameters.size());
  for (size_t i = 0; i < parameters.size(); ++i)
    has_grad[i] = parameters[i].grad().defined() ? 1 : 0;
  at::Tensor flags = at::tensor(has_grad, at::TensorOptions().dtype(at::kFloat)).to(impl.device);
  const std::vector<Bucket> buckets = plan_buckets(parameters, bucket_bytes);
  std::vector<at::Tensor> flats;
  for (const Bucket& bucket : buckets) {
    at::Tensor flat =
        at::empty({bucket.numel}, at::TensorOptions().dtype(bucket.type).device(impl.device));
    int64_t offset = 0;
    for (size_t index : bucket.members) {
      const at::Tensor& grad = parameters[index].grad();
      const int64_t numel = parameters[index].numel();
      if (grad.defined()) {
        flat.narrow(0, offset, numel).copy_(grad.reshape({-1}));
      } else {
        flat.narrow(0, offset, numel).zero_();
      }
      offset += numel;
    }
    flats.push_back(flat);
    stats.bytes += flat.numel() * static_cast<int64_t>(flat.element_size());
  }
  stats.bytes += flags.numel() * static_cast<int64_t>(flags.element_size());
  stats.buckets = static_cast<int32_t>(buckets.size());
  impl.run("gradient all-reduce", [&](CollectiveBackend& backend) {
    std::vector<WorkHandle> works;
    std::vector<at::Tensor> flag_list{flags};
    works.push_back(backend.all_reduce(flag_list, c10d::ReduceOp::SUM));
    for (at::Tensor& flat : flats) {
      std::vector<at::Tensor> one{flat};
      works.push_back(backend.all_reduce(one, c10d::ReduceOp::SUM));
    }
    return works;
  });
  const std::vector<float> any_grad = to_vector<float>(flags);
  for (size_t b = 0; b < buckets.size(); ++b) {
    at::Tensor& flat = flats[b];
    int64_t offset = 0;
    for (size_t index : buckets[b].members) {
      const at::Tensor& parameter = parameters[index];
      const int64_t numel = parameter.numel();
      if (any_grad[index] > 0) {
        at::Tensor summed = flat.narrow(0, offset, numel).view(parameter.sizes());
        if (parameter.grad().defined()) {
          parameter.mutable_grad().copy_(summed);
        } else {
          parameter.mutable_grad() = summed.to(parameter.device()).clone();
        }
      }
      offset += numel;
    }
  }
  return stats;
}

void broadcast_model_state(ProcessGroup& group, const NamedTensors& state, int64_t step) {
  ProcessGroup::Impl& impl = group.impl();
  const int32_t world = group.world_size();
  // Every rank's [fingerprint, tensor count, step], compared with rank 0's.
  HostTensor mine;
  mine.type = ElementType::kInt64;
  mine.shape = {3};
  const int64_t values[3] = {static_cast<int64_t>(structure_fingerprint(state)),
                             static_cast<int64_t>(state.size()), step};
  mine.bytes = std::make_shared<std::vector<uint8_t>>(reinterpret_cast<const uint8_t*>(values),
                                                      reinterpret_cast<const uint8_t*>(values + 3));
  const HostTensor all = group.all_gather(mine);
  const auto* rows = reinterpret_cast<const int64_t*>(all.bytes->data());
  std::vector<int32_t> other_model, other_step;
  for (int32_t r = 1; r < world; ++r) {
    if (rows[3 * r] != rows[0] || rows[3 * r + 1] != rows[1]) {
      other_model.push_back(r);
    } else if (rows[3 * r + 2] != rows[2]) {
      other_step.push_back(r);
    }
  }
  if (!other_model.empty()) {
    throw RuntimeError("ERR_SDVP_DIST_CONFIG",
                       "joining the group: rank(s) " + rank_list(other_model) +
                           " hold a model with other parameters or buffers than rank 0's (the "
                           "same architecture and configuration are needed on every rank)");
  }
  if (!other_step.empty()) {
    std::string steps;
    for (int32_t r : other_step)
      steps += (steps.empty() ? "" : ", ") + std::to_string(rows[3 * r + 2]);
    throw RuntimeError("ERR_SDVP_DIST_CONFIG",
                       "joining the group: rank(s) " + rank_list(other_step) +
                           " are at optimizer step " + steps + " but rank 0 is at step " +
                           std::to_string(rows[2]) +
                           "; every rank must start from the same checkpoint (or from none)");
  }
  const c10::NoGradGuard no_grad;
  std::vector<at::Tensor> tensors;
  for (const auto& named : state) tensors.push_back(named.second);
  const std::vector<Bucket> buckets = plan_buckets(tensors, int64_t{64} << 20);
  std::vector<at::Tensor> flats;
  for (const Bucket& bucket : buckets) {
    std::vector<at::Tensor> pieces;
    for (size_t index : bucket.members) pieces.push_back(tensors[index].detach().reshape({-1}));
    flats.push_back(at::cat(pieces).to(impl.device));
  }
  impl.run("parameter broadcast", [&](CollectiveBackend& backend) {
    std::vector<WorkHandle> works;
    for (at::Tensor& flat : flats) {
      std::vector<at::Tensor> one{flat};
      works.push_back(backend.broadcast(one, 0));
    }
    return works;
  });
  if (group.rank() == 0) return;
  for (size_t b = 0; b < buckets.size(); ++b) {
    int64_t offset = 0;
    for (size_t index : buckets[b].members) {
      at::Tensor& tensor = tensors[index];
      const int64_t numel = tensor.numel();
      tensor.copy_(flats[b].narrow(0, offset, numel).view(tensor.sizes()));
      offset += numel;
    }
  }
}

}  // namespace sdvp::torch_runtime
