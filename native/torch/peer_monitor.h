// Who failed when a collective fails: every sdvp rank publishes a heartbeat (a beat counter and the
// number of collectives it has entered) in the group's store; after a failure the survivors read
// them twice to tell a rank that is gone (no beats) from one that is alive but elsewhere (behind).
#pragma once

#include <torch/csrc/distributed/c10d/Store.hpp>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "distributed.h"
#include "rendezvous.h"

namespace sdvp::torch_runtime {

class PeerMonitor {
 public:
  // `store` is a connection of this monitor's own; `records` the announcements seen at start.
  PeerMonitor(const ProcessGroupConfig& config, c10::intrusive_ptr<c10d::Store> store,
              std::map<int32_t, RankRecord> records);
  ~PeerMonitor();
  PeerMonitor(const PeerMonitor&) = delete;
  PeerMonitor& operator=(const PeerMonitor&) = delete;

  // Marks the start of this rank's collective number `sequence` (1-based).
  void entered(int64_t sequence) { sequence_.store(sequence); }
  int64_t sequence() const { return sequence_.load(); }

  // After collective `sequence` failed: which ranks are gone or behind, in words (two heartbeat
  // intervals of waiting), or "" when every sdvp rank looks alive and in step.
  std::string diagnose();

  // Stops the heartbeat thread (idempotent).
  void stop();

  // Milliseconds between heartbeats for a group timeout (a twentieth of it, within [50, 1000]).
  static int64_t interval_for(int64_t timeout_ms);

 private:
  struct Beat {
    bool present = false;
    int64_t count = 0;
    int64_t sequence = 0;
  };
  void run();
  // Every other rank's heartbeat; throws when the store does not answer.
  std::map<int32_t, Beat> read_beats();

  ProcessGroupConfig config_;
  c10::intrusive_ptr<c10d::Store> store_;
  std::map<int32_t, RankRecord> records_;
  int64_t interval_ms_;
  std::atomic<int64_t> sequence_{0};
  std::mutex mutex_;  // guards stopping_ and the store (the heartbeat and diagnose share it)
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace sdvp::torch_runtime
