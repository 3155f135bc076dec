// The distributed runtime's public face, free of torch headers: a process group over PyTorch's c10d
// (TCPStore rendezvous, ProcessGroupGloo on CPU, ProcessGroupNCCL when LibTorch has it) and its
// collectives on host tensors. The Node addon and the train step use it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "torch_runtime.h"

namespace sdvp::torch_runtime {

struct ProcessGroupConfig {
  std::string backend = "gloo";  // "gloo" or "nccl"
  int32_t rank = 0;
  int32_t world_size = 1;
  int32_t local_rank = 0;  // the CUDA device of an NCCL group
  std::string master_addr = "127.0.0.1";
  int32_t master_port = 29500;             // 0 with world_size 1: any free port
  int64_t timeout_ms = 600000;             // every collective
  int64_t rendezvous_timeout_ms = 600000;  // the start: waiting for the store and the other ranks
  std::string fingerprint;  // compared across the sdvp ranks at start ("" = not compared)
  // torchrun's static rendezvous (TORCHELASTIC_USE_AGENT_STORE): the launcher hosts the store,
  // every rank is a client, and the keys live under "/worker/attempt_<restart count>".
  bool agent_store = false;
  int32_t restart_count = 0;
};

enum class ReduceOp : int32_t { kSum = 0, kAvg = 1, kMax = 2, kMin = 3 };

// Which backends this build can create.
bool gloo_built();
bool nccl_built();

// A member of a process group. Thread-safe: collectives are serialised by a mutex, so they are
// issued in the order the callers take it (callers that need a cross-rank order must impose it).
// After any collective fails the group is broken: every later call throws the same error.
class ProcessGroup {
 public:
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  // Rendezvous through the TCPStore at master_addr:master_port (rank 0 hosts it), the same start-up
  // a Python `torch.distributed.init_process_group(backend, init_method="tcp://...")` does, so
  // Python ranks can join; then the backend. Throws RuntimeError with ERR_SDVP_DIST_PORT,
  // ERR_SDVP_DIST_CONFIG, ERR_SDVP_DIST_TIMEOUT, ERR_SDVP_NO_NCCL, ERR_SDVP_NO_GLOO.
  static std::shared_ptr<ProcessGroup> create(const ProcessGroupConfig& config);

  // The reduction of `input` over the ranks (a new tensor; kAvg needs float32 data).
  HostTensor all_reduce(const HostTensor& input, ReduceOp op);
  // Rank `src`'s tensor, on every rank (every rank passes one of the same shape and type).
  HostTensor broadcast(const HostTensor& input, int32_t src);
  // Every rank's tensor, in rank order, stacked along a new first dimension [world_size, ...].
  HostTensor all_gather(const HostTensor& input);
  void barrier();
  // Every rank's byte string, in rank order (any lengths).
  std::vector<std::string> all_gather_bytes(const std::string& bytes);

  // Stops the heartbeat and releases the backend and the store. Idempotent; later collectives throw
  // ERR_SDVP_DISPOSED.
  void destroy();

  int32_t rank() const;
  int32_t world_size() const;
  const std::string& backend() const;
  // The rendezvous store's port (the one picked when 0 was asked for).
  int32_t port() const;
  // A process-unique id, so a model can tell which group it joined.
  uint64_t id() const;

  struct Impl;  // defined in process_group_impl.h
  Impl& impl() { return *impl_; }

 private:
  explicit ProcessGroup(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sdvp::torch_runtime
