// The heartbeat thread and the failure diagnosis of a process group (see peer_monitor.h).
#include "peer_monitor.h"

#include <chrono>
#include <sstream>
#include <vector>

#include "runtime_error.h"

namespace sdvp::torch_runtime {

namespace {

std::string heartbeat_key(int32_t rank) { return "sdvp/heartbeat/" + std::to_string(rank); }

}  // namespace

int64_t PeerMonitor::interval_for(int64_t timeout_ms) {
  return std::min<int64_t>(1000, std::max<int64_t>(50, timeout_ms / 20));
}

PeerMonitor::PeerMonitor(const ProcessGroupConfig& config, c10::intrusive_ptr<c10d::Store> store,
                         std::map<int32_t, RankRecord> records)
    : config_(config),
      store_(std::move(store)),
      records_(std::move(records)),
      interval_ms_(interval_for(config.timeout_ms)) {
  thread_ = std::thread([this] { run(); });
}

PeerMonitor::~PeerMonitor() { stop(); }

void PeerMonitor::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void PeerMonitor::run() {
  const std::string key = heartbeat_key(config_.rank);
  int64_t count = 0;
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    const std::string value = std::to_string(++count) + " " + std::to_string(sequence_.load());
    try {
      store_->set(key, std::vector<uint8_t>(value.begin(), value.end()));
    } catch (const std::exception&) {
      // The store is gone (rank 0 exited): the next collective fails, and diagnose() says why.
    }
    wake_.wait_for(lock, std::chrono::milliseconds(interval_ms_), [this] { return stopping_; });
  }
}

std::map<int32_t, PeerMonitor::Beat> PeerMonitor::read_beats() {
  std::map<int32_t, Beat> beats;
  for (int32_t rank = 0; rank < config_.world_size; ++rank) {
    if (rank == config_.rank) continue;
    Beat beat;
    const std::string key = heartbeat_key(rank);
    if (store_->check({key})) {
      const std::vector<uint8_t> bytes = store_->get(key);
      std::istringstream in(std::string(bytes.begin(), bytes.end()));
      beat.present = static_cast<bool>(in >> beat.count >> beat.sequence);
    }
    beats[rank] = beat;
  }
  return beats;
}

std::string PeerMonitor::diagnose() {
  const int64_t mine = sequence_.load();
  std::map<int32_t, Beat> first, second;
  try {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      first = read_beats();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2 * interval_ms_ + 50));
    std::lock_guard<std::mutex> lock(mutex_);
    second = read_beats();
  } catch (const std::exception&) {
    const std::string store = config_.master_addr + ":" + std::to_string(config_.master_port);
    if (config_.agent_store) {
      return "the group's store at " + store +
             ", which the launcher hosts, no longer answers (the launcher exited or its machine is "
             "unreachable)";
    }
    if (config_.rank == 0) return "";
    const auto record =
        records_.count(0) ? std::optional<RankRecord>(records_.at(0)) : std::nullopt;
    return describe_rank(0, record) + ", which hosts the group's store at " + store +
           ", is gone: the store no longer answers (its process exited or its machine is "
           "unreachable)";
  }
  std::string gone, behind;
  for (const auto& [rank, after] : second) {
    const Beat& before = first[rank];
    const auto record =
        records_.count(rank) ? std::optional<RankRecord>(records_.at(rank)) : std::nullopt;
    if (!after.present) continue;  // not an sdvp rank (a Python rank): nothing to say
    if (before.present && before.count == after.count) {
      gone += (gone.empty() ? "" : "; ") + describe_rank(rank, record);
    } else if (after.sequence < mine) {
      behind += (behind.empty() ? "" : "; ") + describe_rank(rank, record) + " has entered only " +
                std::to_string(after.sequence) + " collective(s)";
    }
  }
  std::string out;
  if (!gone.empty()) {
    out += gone + (gone.find(';') == std::string::npos ? " has" : " have") +
           " stopped responding (the process exited, was killed or is frozen)";
  }
  if (!behind.empty()) {
    out += std::string(out.empty() ? "" : "; ") + behind + " and is alive but has not reached " +
           "collective #" + std::to_string(mine) +
           " (it is busy elsewhere, or the ranks issued different collectives)";
  }
  return out;
}

}  // namespace sdvp::torch_runtime
