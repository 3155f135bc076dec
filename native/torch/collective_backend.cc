// The c10d backends behind CollectiveBackend: ProcessGroupGloo (CPU tensors; in Debian's
// libtorch_cpu, with gloo's headers from libgloo-dev) and ProcessGroupNCCL (CUDA tensors; in a
// LibTorch built with NCCL). CMake defines SDVP_HAVE_GLOO / SDVP_HAVE_NCCL only when a test program
// including and linking each one builds; without them the backend is reported missing, by name.
#include <cstdlib>

#include "process_group_impl.h"
#include "runtime_error.h"

#ifdef SDVP_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef SDVP_HAVE_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace sdvp::torch_runtime {

namespace {

// One c10d backend class: the 1.13 and 2.x classes share these virtual signatures.
template <typename Group>
class BackendOf : public CollectiveBackend {
 public:
  explicit BackendOf(c10::intrusive_ptr<Group> group) : group_(std::move(group)) {}

  WorkHandle all_reduce(std::vector<at::Tensor>& tensors, c10d::ReduceOp op) override {
    c10d::AllreduceOptions options;
    options.reduceOp = op;
    return group_->allreduce(tensors, options);
  }
  WorkHandle broadcast(std::vector<at::Tensor>& tensors, int64_t root) override {
    c10d::BroadcastOptions options;
    options.rootRank = root;
    return group_->broadcast(tensors, options);
  }
  WorkHandle all_gather(std::vector<std::vector<at::Tensor>>& outputs,
                        std::vector<at::Tensor>& inputs) override {
    return group_->allgather(outputs, inputs);
  }
  WorkHandle barrier() override { return group_->barrier(); }
  void set_sequence_number() override { group_->setSequenceNumberForGroup(); }

 private:
  c10::intrusive_ptr<Group> group_;
};

bool is_loopback(const std::string& address) {
  return address == "localhost" || address.rfind("127.", 0) == 0 || address == "::1";
}

#ifdef SDVP_HAVE_GLOO
std::unique_ptr<CollectiveBackend> make_gloo(const ProcessGroupConfig& config,
                                             const c10::intrusive_ptr<c10d::Store>& store) {
  auto options =
      c10d::ProcessGroupGloo::Options::create(std::chrono::milliseconds(config.timeout_ms));
  // The address peers reach this rank at: GLOO_SOCKET_IFNAME's interface (as PyTorch), loopback
  // for a group on one machine's loopback, else the address this machine's hostname resolves to.
  const char* interface = std::getenv("GLOO_SOCKET_IFNAME");
  if (interface != nullptr && interface[0] != '\0') {
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(interface));
  } else if (is_loopback(config.master_addr)) {
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  } else {
    options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  options->threads = 2;
  auto group =
      c10::make_intrusive<c10d::ProcessGroupGloo>(store, config.rank, config.world_size, options);
  return std::make_unique<BackendOf<c10d::ProcessGroupGloo>>(group);
}
#endif

#ifdef SDVP_HAVE_NCCL
std::unique_ptr<CollectiveBackend> make_nccl(const ProcessGroupConfig& config,
                                             const c10::intrusive_ptr<c10d::Store>& store) {
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = std::chrono::milliseconds(config.timeout_ms);
  auto group =
      c10::make_intrusive<c10d::ProcessGroupNCCL>(store, config.rank, config.world_size, options);
  return std::make_unique<BackendOf<c10d::ProcessGroupNCCL>>(group);
}
#endif

}  // namespace

bool gloo_built() {
#ifdef SDVP_HAVE_GLOO
  return true;
#else
  return false;
#endif
}

bool nccl_built() {
#ifdef SDVP_HAVE_NCCL
  return true;
#else
  return false;
#endif
}

void require_backend(const std::string& backend) {
  if (backend == "gloo") {
    if (gloo_built()) return;
    throw RuntimeError("ERR_SDVP_NO_GLOO",
                       "this sdvp build has no Gloo backend: the addon was built without gloo's "
                       "headers (apt-get install -y libgloo-dev && npm run build:native)");
  }
  if (backend == "nccl") {
    if (nccl_built()) return;
    throw RuntimeError("ERR_SDVP_NO_NCCL",
                       "backend 'nccl' needs a LibTorch built with NCCL (CUDA); this sdvp build's "
                       "LibTorch (" SDVP_TORCH_VERSION
                       ") was not built with NCCL. Use backend 'gloo', or build against PyTorch's "
                       "CUDA LibTorch (see docs/distributed.md)");
  }
  throw RuntimeError("ERR_SDVP_OPTION",
                     "backend must be 'gloo' or 'nccl', but received '" + backend + "'");
}

std::unique_ptr<CollectiveBackend> make_backend(const ProcessGroupConfig& config,
                                                const c10::intrusive_ptr<c10d::Store>& store) {
  require_backend(config.backend);
#ifdef SDVP_HAVE_GLOO
  if (config.backend == "gloo") return make_gloo(config, store);
#endif
#ifdef SDVP_HAVE_NCCL
  if (config.backend == "nccl") return make_nccl(config, store);
#endif
  throw RuntimeError("ERR_SDVP_OPTION", "backend '" + config.backend + "' is not available");
}

}  // namespace sdvp::torch_runtime
