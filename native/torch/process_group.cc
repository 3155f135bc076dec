// ProcessGroup: creating a group (store, announcements, backend, heartbeat), its collectives on
// host tensors, the failure that breaks it, and destroy().
#include <atomic>
#include <chrono>

#include "process_group_impl.h"
#include "rendezvous.h"
#include "runtime_error.h"
#include "tensor_convert.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>

namespace sdvp::torch_runtime {

namespace {

std::atomic<uint64_t> next_group_id{1};

bool is_timeout(const std::string& message) {
  return message.find("imed out") != std::string::npos ||
         message.find("Timeout") != std::string::npos;
}

// The tensor a collective works on: a copy of the host data on the backend's device.
at::Tensor device_copy(const HostTensor& input, const at::Device& device, const char* what) {
  switch (input.type) {
    case ElementType::kFloat32:
    case ElementType::kInt32:
    case ElementType::kInt64:
    case ElementType::kUInt8:
      break;
    default:
      throw RuntimeError("ERR_SDVP_ARG", std::string(what) +
                                             " takes float32, int32, int64 or uint8 data, not " +
                                             element_type_name(input.type));
  }
  at::Tensor tensor = to_tensor(input, device);
  return device.is_cpu() ? tensor.clone() : tensor;  // to_tensor already copied to a GPU
}

c10d::ReduceOp to_c10d(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg:  // Gloo has no AVG: a sum, divided below
      return c10d::ReduceOp::SUM;
    case ReduceOp::kMax:
      return c10d::ReduceOp::MAX;
    case ReduceOp::kMin:
      return c10d::ReduceOp::MIN;
  }
  throw RuntimeError("ERR_SDVP_OPTION", "unknown reduction");
}

}  // namespace

void ProcessGroup::Impl::check_usable() const {
  if (destroyed) throw RuntimeError("ERR_SDVP_DISPOSED", "the process group was destroyed");
  if (!failure.empty()) throw RuntimeError(failure_code.c_str(), failure);
}

void ProcessGroup::Impl::fail(const std::string& what) {
  std::string cause;
  try {
    throw;
  } catch (const std::exception& error) {
    cause = torch_message(error);
  } catch (...) {
    cause = "unknown error";
  }
  const std::string diagnosis = monitor ? monitor->diagnose() : "";
  const bool timed_out = is_timeout(cause);
  failure_code = timed_out && diagnosis.empty() ? "ERR_SDVP_DIST_TIMEOUT" : "ERR_SDVP_DIST_PEER";
  failure = "collective #" + std::to_string(sequence) + " (" + what + ") failed on rank " +
            std::to_string(config.rank) + " of " + std::to_string(config.world_size) +
            (diagnosis.empty() ? (timed_out ? " after " + std::to_string(config.timeout_ms) +
                                                  " ms: no peer could be blamed"
                                            : "")
                               : ": " + diagnosis) +
            ". The group is unusable from here on. Backend: " + cause;
  throw RuntimeError(failure_code.c_str(), failure);
}

ProcessGroup::ProcessGroup(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ProcessGroup::~ProcessGroup() {
  try {
    destroy();
  } catch (...) {
    // Destruction never throws.
  }
}

std::shared_ptr<ProcessGroup> ProcessGroup::create(const ProcessGroupConfig& config) {
  if (config.world_size < 1 || config.rank < 0 || config.rank >= config.world_size) {
    throw RuntimeError("ERR_SDVP_RANGE", "rank must be in [0, worldSize): rank " +
                                             std::to_string(config.rank) + ", worldSize " +
                                             std::to_string(config.world_size));
  }
  require_backend(config.backend);

  auto impl = std::make_unique<Impl>();
  impl->config = config;
  impl->id = next_group_id.fetch_add(1);
  impl->store = open_store(config);
  impl->config.master_port = store_port(impl->store);
  const std::map<int32_t, RankRecord> records = announce_and_wait(impl->store, impl->config);
  if (config.backend == "nccl") impl->device = at::Device(at::kCUDA, config.local_rank);
  auto prefixed = c10::make_intrusive<c10d::PrefixStore>(
      kBackendPrefix, c10::make_intrusive<c10d::PrefixStore>(kDefaultGroupPrefix, impl->store));
  try {
    impl->backend = make_backend(impl->config, prefixed);
  } catch (const RuntimeError&) {
    throw;
  } catch (const std::exception& error) {
    const std::string message = torch_message(error);
    throw RuntimeError(is_timeout(message) ? "ERR_SDVP_DIST_TIMEOUT" : "ERR_SDVP_DIST_PEER",
                       "rank " + std::to_string(config.rank) + " could not connect its " +
                           config.backend + " backend to the other ranks: " + message);
  }
  store_based_barrier(impl->store, impl->config);
  translate_errors("ERR_SDVP_DIST_PEER", "exchanging the group's sequence number",
                   [&] { impl->backend->set_sequence_number(); });
  impl->monitor = std::make_unique<PeerMonitor>(
      impl->config, connect_store(impl->config, impl->config.master_port), records);
  return std::shared_ptr<ProcessGroup>(new ProcessGroup(std::move(impl)));
}

HostTensor ProcessGroup::all_reduce(const HostTensor& input, ReduceOp op) {
  if (op == ReduceOp::kAvg && input.type != ElementType::kFloat32) {
    throw RuntimeError("ERR_SDVP_ARG", "allReduce with op 'avg' needs float32 data, not " +
                                           std::string(element_type_name(input.type)));
  }
  at::Tensor tensor = device_copy(input, impl_->device, "allReduce");
  impl_->run("allReduce", [&](CollectiveBackend& backend) {
    std::vector<at::Tensor> tensors{tensor};
    return std::vector<WorkHandle>{backend.all_reduce(tensors, to_c10d(op))};
  });
  if (op == ReduceOp::kAvg) tensor.div_(impl_->config.world_size);
  return to_host(tensor);
}

HostTensor ProcessGroup::broadcast(const HostTensor& input, int32_t src) {
  if (src < 0 || src >= impl_->config.world_size) {
    throw RuntimeError("ERR_SDVP_RANGE", "broadcast's src must be a rank in [0, " +
                                             std::to_string(impl_->config.world_size) +
                                             "), but received " + std::to_string(src));
  }
  at::Tensor tensor = device_copy(input, impl_->device, "broadcast");
  impl_->run("broadcast", [&](CollectiveBackend& backend) {
    std::vector<at::Tensor> tensors{tensor};
    return std::vector<WorkHandle>{backend.broadcast(tensors, src)};
  });
  return to_host(tensor);
}

HostTensor ProcessGroup::all_gather(const HostTensor& input) {
  at::Tensor tensor = device_copy(input, impl_->device, "allGather");
  std::vector<std::vector<at::Tensor>> outputs(1);
  for (int32_t r = 0; r < impl_->config.world_size; ++r)
    outputs[0].push_back(at::empty_like(tensor));
  impl_->run("allGather", [&](CollectiveBackend& backend) {
    std::vector<at::Tensor> inputs{tensor};
    return std::vector<WorkHandle>{backend.all_gather(outputs, inputs)};
  });
  return to_host(at::stack(outputs[0]));
}

void ProcessGroup::barrier() {
  impl_->run("barrier", [&](CollectiveBackend& backend) {
    return std::vector<WorkHandle>{backend.barrier()};
  });
}

std::vector<std::string> ProcessGroup::all_gather_bytes(const std::string& bytes) {
  // Lengths first, then every rank's bytes padded to the longest (as torch's all_gather_object).
  HostTensor length;
  length.type = ElementType::kInt64;
  length.shape = {1};
  const int64_t size = static_cast<int64_t>(bytes.size());
  length.bytes = std::make_shared<std::vector<uint8_t>>(
      reinterpret_cast<const uint8_t*>(&size), reinterpret_cast<const uint8_t*>(&size) + 8);
  const HostTensor lengths = all_gather(length);
  const auto* sizes = reinterpret_cast<const int64_t*>(lengths.bytes->data());
  int64_t longest = 0;
  for (int32_t r = 0; r < impl_->config.world_size; ++r) longest = std::max(longest, sizes[r]);
  HostTensor padded;
  padded.type = ElementType::kUInt8;
  padded.shape = {std::max<int64_t>(longest, 1)};
  padded.bytes = std::make_shared<std::vector<uint8_t>>(padded.shape[0], 0);
  std::copy(bytes.begin(), bytes.end(), padded.bytes->begin());
  const HostTensor gathered = all_gather(padded);
  std::vector<std::string> out;
  for (int32_t r = 0; r < impl_->config.world_size; ++r) {
    const char* begin = reinterpret_cast<const char*>(gathered.bytes->data()) + r * padded.shape[0];
    out.emplace_back(begin, begin + sizes[r]);
  }
  return out;
}

void ProcessGroup::destroy() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  if (impl_->destroyed) return;
  impl_->destroyed = true;
  if (impl_->monitor) impl_->monitor->stop();
  impl_->backend.reset();
  impl_->monitor.reset();
  impl_->store.reset();
}

int32_t ProcessGroup::rank() const { return impl_->config.rank; }
int32_t ProcessGroup::world_size() const { return impl_->config.world_size; }
const std::string& ProcessGroup::backend() const { return impl_->config.backend; }
uint64_t ProcessGroup::id() const { return impl_->id; }
int32_t ProcessGroup::port() const { return impl_->config.master_port; }

}  // namespace sdvp::torch_runtime
