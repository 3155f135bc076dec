// The start of a process group: the TCPStore (rank 0 hosts it), each sdvp rank's announcement, and
// the store-based barrier of PyTorch 1.13's init_process_group, so Python ranks can share the
// group. Order, as PyTorch's: store, (announcements), backend, barrier. Mismatched world sizes,
// backends, fingerprints or a rank started twice fail here, fast.
#pragma once

#include <torch/csrc/distributed/c10d/Store.hpp>

#include <map>
#include <optional>
#include <string>

#include "distributed.h"

namespace sdvp::torch_runtime {

// What an sdvp rank announces under sdvp/rank/<r> (for checks at start and for error messages).
struct RankRecord {
  int32_t world_size = 0;
  std::string backend;
  std::string fingerprint;
  std::string host;
  int64_t pid = 0;
};

std::string encode_rank_record(const RankRecord& record);
std::optional<RankRecord> decode_rank_record(const std::string& text);
// "rank 1 (pid 4242 on host-a)", or "rank 1" when the rank announced nothing (a Python rank).
std::string describe_rank(int32_t rank, const std::optional<RankRecord>& record);

// The store key an sdvp rank announces itself under.
std::string rank_record_key(int32_t rank);

// Connects to (rank 0: starts, unless a launcher's agent hosts it) the TCPStore at
// master_addr:master_port. Throws ERR_SDVP_DIST_PORT when rank 0 cannot listen on the port,
// ERR_SDVP_DIST_TIMEOUT when another rank cannot reach it.
c10::intrusive_ptr<c10d::Store> open_store(const ProcessGroupConfig& config);

// A second client connection to the same store (for the heartbeat, which must not queue behind a
// long wait on the main connection).
c10::intrusive_ptr<c10d::Store> connect_store(const ProcessGroupConfig& config, int32_t port);

// The port the store listens on (the configured one, or the one picked for port 0).
int32_t store_port(const c10::intrusive_ptr<c10d::Store>& store);

// Announces this rank and waits until every rank has arrived (an sdvp rank by its announcement,
// checked against this rank's; a PyTorch rank by its Gloo address). Returns the announcements seen,
// by rank. Throws ERR_SDVP_DIST_CONFIG (a mismatch, a rank started twice) or ERR_SDVP_DIST_TIMEOUT
// (ranks missing when the timeout ran out, named).
std::map<int32_t, RankRecord> announce_and_wait(const c10::intrusive_ptr<c10d::Store>& store,
                                                const ProcessGroupConfig& config);

// PyTorch 1.13's store-based barrier at the end of init_process_group (after the backend exists).
void store_based_barrier(const c10::intrusive_ptr<c10d::Store>& store,
                         const ProcessGroupConfig& config);

// The prefix PyTorch's default group uses in the store ("default_pg"), and its backend's ("0").
extern const char* const kDefaultGroupPrefix;
extern const char* const kBackendPrefix;

}  // namespace sdvp::torch_runtime
