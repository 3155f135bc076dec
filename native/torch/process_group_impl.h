// The state behind a ProcessGroup: the store, the c10d backend behind a small interface (so the
// same code serves LibTorch 1.13, where backends derive from c10d::ProcessGroup, and 2.x, where
// they derive from c10d::Backend), the heartbeat, and run(), through which every collective goes:
// one at a time, waited with the group's timeout, and on failure a diagnosis naming the ranks at
// fault.
#pragma once

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include <memory>
#include <mutex>
#include <utility>
#include <string>
#include <vector>

#include "distributed.h"
#include "peer_monitor.h"

namespace sdvp::torch_runtime {

using WorkHandle = c10::intrusive_ptr<c10d::Work>;

// The collectives sdvp uses, on tensors of the backend's device.
class CollectiveBackend {
 public:
  virtual ~CollectiveBackend() = default;
  virtual WorkHandle all_reduce(std::vector<at::Tensor>& tensors, c10d::ReduceOp op) = 0;
  virtual WorkHandle broadcast(std::vector<at::Tensor>& tensors, int64_t root) = 0;
  virtual WorkHandle all_gather(std::vector<std::vector<at::Tensor>>& outputs,
                                std::vector<at::Tensor>& inputs) = 0;
  virtual WorkHandle barrier() = 0;
  // What PyTorch's init_process_group does after its start barrier: rank 0 publishes the group's
  // sequence number, the others wait for it (a Python rank waits for rank 0's).
  virtual void set_sequence_number() = 0;
};

// Throws ERR_SDVP_NO_GLOO / ERR_SDVP_NO_NCCL when this build lacks `backend`, ERR_SDVP_OPTION for
// an unknown name.
void require_backend(const std::string& backend);

// Makes the backend the config names on `store` (already prefixed). Throws ERR_SDVP_NO_GLOO /
// ERR_SDVP_NO_NCCL when this build lacks it.
std::unique_ptr<CollectiveBackend> make_backend(const ProcessGroupConfig& config,
                                                const c10::intrusive_ptr<c10d::Store>& store);

struct ProcessGroup::Impl {
  ProcessGroupConfig config;
  uint64_t id = 0;
  at::Device device{at::kCPU};  // where the backend wants tensors (cuda:local_rank for NCCL)
  c10::intrusive_ptr<c10d::Store> store;
  std::unique_ptr<CollectiveBackend> backend;
  std::unique_ptr<PeerMonitor> monitor;

  std::mutex mutex;     // one collective at a time, and the fields below
  std::string failure;  // the message of the failure that broke the group, or ""
  std::string failure_code;
  bool destroyed = false;
  int64_t sequence = 0;  // collectives entered

  // A collective started and not yet waited: it holds the group until finish().
  struct Pending {
    std::unique_lock<std::mutex> lock;
    std::vector<WorkHandle> works;
    std::string what;
  };

  // Starts one collective: `issue(backend)` returns the works it started. The group stays taken
  // (no other collective starts) until finish(), so work can overlap it.
  template <typename Issue>
  Pending start(const std::string& what, Issue&& issue) {
    Pending pending{std::unique_lock<std::mutex>(mutex), {}, what};
    check_usable();
    monitor->entered(++sequence);
    try {
      pending.works = issue(*backend);
    } catch (...) {
      fail(what);
    }
    return pending;
  }

  // Waits every work of `pending` with the group's timeout. Any failure breaks the group and throws
  // ERR_SDVP_DIST_PEER (ERR_SDVP_DIST_TIMEOUT for a timeout) with the ranks at fault named.
  void finish(Pending& pending) {
    if (!pending.lock.owns_lock()) return;  // finished already
    try {
      for (WorkHandle& work : pending.works)
        work->wait(std::chrono::milliseconds(config.timeout_ms));
    } catch (...) {
      fail(pending.what);
    }
    pending.lock.unlock();
  }

  // start() and finish() at once.
  template <typename Issue>
  void run(const std::string& what, Issue&& issue) {
    Pending pending = start(what, std::forward<Issue>(issue));
    finish(pending);
  }

  // Throws the failure that broke the group, or ERR_SDVP_DISPOSED after destroy().
  void check_usable() const;
  // Inside a catch block, under the mutex: diagnoses, records and throws the failure.
  [[noreturn]] void fail(const std::string& what);
};

}  // namespace sdvp::torch_runtime
