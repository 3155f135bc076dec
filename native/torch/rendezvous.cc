// The TCPStore rendezvous of a process group, compatible with PyTorch 1.13's
// init_process_group(init_method="tcp://..."): rank 0 hosts a multi-tenant TCPStore, clients count
// themselves in its init key, and every rank passes the store-based barrier under "default_pg".
// On top, each sdvp rank announces itself so mismatches fail at once with the ranks named.
#include "rendezvous.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <sstream>
#include <thread>
#include <vector>

#include "runtime_error.h"

namespace sdvp::torch_runtime {

const char* const kDefaultGroupPrefix = "default_pg";
const char* const kBackendPrefix = "0";

namespace {

using Clock = std::chrono::steady_clock;

// PyTorch 1.13's init_process_group counts its ranks under this key (its group counter is 1 after
// the default group was made).
const char* const kBarrierKey = "store_based_barrier_key:1";

bool contains_nocase(const std::string& text, const std::string& needle) {
  auto lower = [](std::string value) {
    std::transform(value.begin(), value.end(), value.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return value;
  };
  return lower(text).find(lower(needle)) != std::string::npos;
}

std::vector<uint8_t> to_bytes(const std::string& text) {
  return std::vector<uint8_t>(text.begin(), text.end());
}

std::string from_bytes(const std::vector<uint8_t>& bytes) {
  return std::string(bytes.begin(), bytes.end());
}

std::string host_name() {
  char buffer[256] = {0};
  if (::gethostname(buffer, sizeof(buffer) - 1) != 0) return "unknown host";
  return buffer;
}

std::string endpoint(const ProcessGroupConfig& config) {
  return config.master_addr + ":" + std::to_string(config.master_port);
}

std::string claim_key(int32_t rank) { return "sdvp/claim/" + std::to_string(rank); }

// A rank that finds the group misconfigured writes why under kAbortKey and counts itself under
// kAbortSeenKey; the others read it there. Rank 0 hosts the store, so it waits (briefly) for every
// rank that announced itself to have read it: otherwise they would only see the store vanish.
const char* const kAbortKey = "sdvp/abort";
const char* const kAbortSeenKey = "sdvp/abort-seen";
constexpr int64_t kAbortLingerMs = 3000;

// The first difference between this rank's record and rank `other`'s, or "".
std::string mismatch(const ProcessGroupConfig& config, int32_t other, const RankRecord& theirs) {
  const std::string who = describe_rank(other, theirs);
  const std::string me = "this rank (" + std::to_string(config.rank) + ")";
  if (theirs.world_size != config.world_size) {
    return who + " was started with worldSize " + std::to_string(theirs.world_size) + ", but " +
           me + " with " + std::to_string(config.world_size);
  }
  if (theirs.backend != config.backend) {
    return who + " uses backend '" + theirs.backend + "', but " + me + " uses '" + config.backend +
           "'";
  }
  if (theirs.fingerprint != config.fingerprint) {
    return who + " runs another configuration (fingerprint '" + theirs.fingerprint + "') than " +
           me + " ('" + config.fingerprint + "')";
  }
  return "";
}

// Whether a (PyTorch) rank's Gloo backend has started: gloo's rendezvous (under the group's
// "default_pg/0" and its device's "0") publishes the rank's hostname as "rank_<r>" (before it waits
// for the lower ranks) and its address as "<r>" (the order depends on gloo's version).
bool gloo_arrived(c10d::Store& store, int32_t rank) {
  const std::string prefix = std::string(kDefaultGroupPrefix) + "/" + kBackendPrefix + "/0/";
  return store.check({prefix + "rank_" + std::to_string(rank)}) ||
         store.check({prefix + std::to_string(rank)});
}

// The store the group uses: under torchrun's agent store, its "/worker/attempt_<n>" part (as
// PyTorch's own workers do); otherwise the TCPStore itself.
c10::intrusive_ptr<c10d::Store> under_agent_prefix(const ProcessGroupConfig& config,
                                                   c10::intrusive_ptr<c10d::TCPStore> store) {
  if (!config.agent_store) return store;
  return c10::make_intrusive<c10d::PrefixStore>(
      "/worker/attempt_" + std::to_string(config.restart_count), std::move(store));
}

}  // namespace

std::string rank_record_key(int32_t rank) { return "sdvp/rank/" + std::to_string(rank); }

std::string encode_rank_record(const RankRecord& record) {
  std::ostringstream out;
  out << "worldSize=" << record.world_size << "\nbackend=" << record.backend
      << "\nfingerprint=" << record.fingerprint << "\npid=" << record.pid
      << "\nhost=" << record.host << "\n";
  return out.str();
}

std::optional<RankRecord> decode_rank_record(const std::string& text) {
  RankRecord record;
  std::istringstream in(text);
  std::string line;
  bool any = false;
  while (std::getline(in, line)) {
    const size_t equals = line.find('=');
    if (equals == std::string::npos) continue;
    const std::string key = line.substr(0, equals);
    const std::string value = line.substr(equals + 1);
    try {
      if (key == "worldSize") record.world_size = std::stoi(value);
      if (key == "pid") record.pid = std::stoll(value);
    } catch (const std::exception&) {
      return std::nullopt;
    }
    if (key == "backend") record.backend = value;
    if (key == "fingerprint") record.fingerprint = value;
    if (key == "host") record.host = value;
    any = true;
  }
  if (!any) return std::nullopt;
  return record;
}

std::string describe_rank(int32_t rank, const std::optional<RankRecord>& record) {
  std::string text = "rank " + std::to_string(rank);
  if (record && record->pid > 0) {
    text += " (pid " + std::to_string(record->pid) + " on " + record->host + ")";
  }
  return text;
}

c10::intrusive_ptr<c10d::Store> open_store(const ProcessGroupConfig& config) {
  c10d::TCPStoreOptions options;
  options.port = static_cast<uint16_t>(config.master_port);
  options.isServer = config.rank == 0 && !config.agent_store;
  options.numWorkers = static_cast<size_t>(config.world_size);
  // A client counts itself in the init key a PyTorch server waits on. An sdvp server does not wait
  // there: announce_and_wait waits instead, and can name who is missing.
  options.waitWorkers = !options.isServer;
  options.timeout = std::chrono::milliseconds(config.rendezvous_timeout_ms);
  options.multiTenant = true;
  try {
    return under_agent_prefix(config,
                              c10::make_intrusive<c10d::TCPStore>(config.master_addr, options));
  } catch (const std::exception& error) {
    const std::string message = torch_message(error);
    if (config.rank == 0 && (contains_nocase(message, "address already in use") ||
                             contains_nocase(message, "failed to listen") ||
                             contains_nocase(message, "failed to bind"))) {
      throw RuntimeError("ERR_SDVP_DIST_PORT",
                         "rank 0 cannot listen on port " + std::to_string(config.master_port) +
                             " for the group's rendezvous store: the port is in use (another run "
                             "or another program holds it); pick another masterPort / "
                             "MASTER_PORT. LibTorch said: " +
                             message);
    }
    if (contains_nocase(message, "timed out") || contains_nocase(message, "timeout")) {
      throw RuntimeError("ERR_SDVP_DIST_TIMEOUT",
                         "rank " + std::to_string(config.rank) +
                             " could not reach the rendezvous store at " + endpoint(config) +
                             " within " + std::to_string(config.rendezvous_timeout_ms) +
                             " ms: rank 0 has not started or has failed, or masterAddr / "
                             "masterPort (MASTER_ADDR / MASTER_PORT) are wrong. LibTorch said: " +
                             message);
    }
    throw RuntimeError("ERR_SDVP_TORCH", "opening the rendezvous store at " + endpoint(config) +
                                             " failed: " + message);
  }
}

c10::intrusive_ptr<c10d::Store> connect_store(const ProcessGroupConfig& config, int32_t port) {
  c10d::TCPStoreOptions options;
  options.port = static_cast<uint16_t>(port);
  options.isServer = false;
  options.waitWorkers = false;
  options.timeout = std::chrono::milliseconds(config.timeout_ms);
  return translate_errors("ERR_SDVP_DIST_PEER", "connecting to the rendezvous store", [&] {
    return under_agent_prefix(config,
                              c10::make_intrusive<c10d::TCPStore>(config.master_addr, options));
  });
}

int32_t store_port(const c10::intrusive_ptr<c10d::Store>& store) {
  if (auto* prefixed = dynamic_cast<c10d::PrefixStore*>(store.get()))
    return store_port(prefixed->getUnderlyingStore());
  const auto* tcp = dynamic_cast<const c10d::TCPStore*>(store.get());
  return tcp ? static_cast<int32_t>(tcp->getPort()) : 0;
}

std::map<int32_t, RankRecord> announce_and_wait(const c10::intrusive_ptr<c10d::Store>& shared,
                                                const ProcessGroupConfig& config) {
  c10d::Store& store = *shared;
  RankRecord mine;
  mine.world_size = config.world_size;
  mine.backend = config.backend;
  mine.fingerprint = config.fingerprint;
  mine.host = host_name();
  mine.pid = static_cast<int64_t>(::getpid());
  std::map<int32_t, RankRecord> records{{config.rank, mine}};
  std::vector<bool> arrived(static_cast<size_t>(config.world_size), false);
  arrived[static_cast<size_t>(config.rank)] = true;

  auto fail_if_claimed_twice = [&] {
    if (store.add(claim_key(config.rank), 0) > 1) {
      throw RuntimeError("ERR_SDVP_DIST_CONFIG", "two processes were started as rank " +
                                                     std::to_string(config.rank) +
                                                     " of the group at " + endpoint(config) +
                                                     "; give each rank exactly once");
    }
  };
  // Fails the start with ERR_SDVP_DIST_CONFIG, after telling the other ranks why (see kAbortKey).
  auto fail_config = [&](const std::string& message) {
    try {
      if (!store.check({kAbortKey})) store.set(kAbortKey, to_bytes(message));
      store.add(kAbortSeenKey, 1);
      if (config.rank == 0) {
        int64_t announced = 0;
        for (int32_t rank = 0; rank < config.world_size; ++rank)
          announced += store.check({rank_record_key(rank)}) ? 1 : 0;
        const Clock::time_point deadline =
            Clock::now() + std::chrono::milliseconds(
                               std::min<int64_t>(kAbortLingerMs, config.rendezvous_timeout_ms));
        while (store.add(kAbortSeenKey, 0) < announced && Clock::now() < deadline)
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    } catch (const std::exception&) {
      // The store is gone (rank 0 left): the other ranks learn of the failure from that.
    }
    throw RuntimeError("ERR_SDVP_DIST_CONFIG", message);
  };
  // Marks the ranks that arrived: an sdvp rank by its announcement (compared with this rank's), a
  // PyTorch rank by what its Gloo backend publishes first.
  auto look_for_ranks = [&] {
    for (int32_t rank = 0; rank < config.world_size; ++rank) {
      if (arrived[static_cast<size_t>(rank)]) continue;
      if (store.check({rank_record_key(rank)})) {
        const auto record = decode_rank_record(from_bytes(store.get(rank_record_key(rank))));
        if (!record) continue;
        const std::string difference = mismatch(config, rank, *record);
        if (!difference.empty()) {
          fail_config("the ranks of the group at " + endpoint(config) + " disagree: " + difference);
        }
        records.emplace(rank, *record);
        arrived[static_cast<size_t>(rank)] = true;
      } else if (config.backend == "gloo" && gloo_arrived(store, rank)) {
        arrived[static_cast<size_t>(rank)] = true;
      }
    }
  };

  return translate_errors("ERR_SDVP_DIST_PEER", "joining the group at " + endpoint(config), [&] {
    store.set(rank_record_key(config.rank), to_bytes(encode_rank_record(mine)));
    store.add(claim_key(config.rank), 1);
    const Clock::time_point start = Clock::now();
    for (;;) {
      fail_if_claimed_twice();
      const bool aborted = store.check({kAbortKey});
      look_for_ranks();  // finds this rank's own view of a mismatch first, when it has one
      if (aborted) {
        fail_config("another rank found the group at " + endpoint(config) +
                    " misconfigured: " + from_bytes(store.get(kAbortKey)));
      }
      if (std::all_of(arrived.begin(), arrived.end(), [](bool here) { return here; })) break;
      const auto waited =
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
      if (waited > config.rendezvous_timeout_ms) {
        std::string missing;
        int32_t count = 0;
        for (int32_t rank = 0; rank < config.world_size; ++rank) {
          if (arrived[static_cast<size_t>(rank)]) {
            ++count;
          } else {
            missing += (missing.empty() ? "" : ", ") + std::to_string(rank);
          }
        }
        throw RuntimeError(
            "ERR_SDVP_DIST_TIMEOUT",
            "only " + std::to_string(count) + " of " + std::to_string(config.world_size) +
                " ranks joined the group at " + endpoint(config) + " within " +
                std::to_string(config.rendezvous_timeout_ms) + " ms; ranks not seen: " + missing);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return records;
  });
}

void store_based_barrier(const c10::intrusive_ptr<c10d::Store>& shared,
                         const ProcessGroupConfig& config) {
  translate_errors(
      "ERR_SDVP_DIST_PEER", "the start barrier of the group at " + endpoint(config), [&] {
        c10d::PrefixStore barrier(kDefaultGroupPrefix, shared);
        barrier.add(kBarrierKey, 1);
        const Clock::time_point start = Clock::now();
        while (barrier.add(kBarrierKey, 0) < config.world_size) {
          const auto waited =
              std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
          if (waited > config.rendezvous_timeout_ms) {
            throw RuntimeError("ERR_SDVP_DIST_TIMEOUT",
                               "not every rank passed the start barrier of the group "
                               "at " +
                                   endpoint(config) + " within " +
                                   std::to_string(config.rendezvous_timeout_ms) + " ms");
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
      });
}

}  // namespace sdvp::torch_runtime
