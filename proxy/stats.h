// Per-worker metric storage: plain single-writer counters, summed by the collector at scrape time.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/command.h"
#include "common/metric_table.h"

namespace sluice {

// Written only by its worker's thread and read by the scraper's: a relaxed
// load + store compiles to a plain add, with no locked instruction on the
// data path, and the scraper still reads a whole value.
//
// Built with -DSLUICE_METRICS=OFF every update is a no-op: that build exists
// only so the benchmark can show what counting costs.
#ifdef SLUICE_NO_METRICS
inline constexpr bool kCounting = false;
#else
inline constexpr bool kCounting = true;
#endif

class StatCounter {
 public:
  void add(std::uint64_t n = 1) {
    if constexpr (kCounting) {
      value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
  }
  std::uint64_t get() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

class StatGauge {
 public:
  void add(std::int64_t n) {
    if constexpr (kCounting) {
      value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
  }
  std::int64_t get() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> value_{0};
};

// Per-bucket (not cumulative) counts; the last slot is +Inf.
template <std::size_t N>
class StatHistogram {
 public:
  void observe(const std::array<double, N>& bounds, double value) {
    if constexpr (kCounting) {
      buckets_[bucket_index(bounds, value)].add();
      sum_.store(sum_.load(std::memory_order_relaxed) + value, std::memory_order_relaxed);
    }
  }
  std::uint64_t bucket(std::size_t i) const { return buckets_[i].get(); }
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::array<StatCounter, N + 1> buckets_;
  std::atomic<double> sum_{0};
};

// Packet sizes, observed for every packet: the bucket comes from the size's
// bit width (packet_size_bucket) and the sum is an exact integer.
class SizeHistogram {
 public:
  void observe(std::uint64_t size) {
    if constexpr (kCounting) {
      buckets_[packet_size_bucket(size)].add();
      sum_.add(size);
    }
  }
  std::uint64_t bucket(std::size_t i) const { return buckets_[i].get(); }
  double sum() const { return static_cast<double>(sum_.get()); }

 private:
  std::array<StatCounter, kPacketSizeBuckets.size() + 1> buckets_;
  StatCounter sum_;
};

template <typename E>
constexpr std::size_t idx(E e) {
  return static_cast<std::size_t>(e);
}

// One listener's metrics within one worker.
struct ListenerStats {
  StatCounter connections_total;
  StatGauge connections_active;
  std::array<StatCounter, idx(RejectReason::kCount)> rejected;
  StatHistogram<kConnectBuckets.size()> upstream_connect;
  std::array<StatCounter, 2> packets;
  std::array<StatCounter, 2> bytes;
  std::array<SizeHistogram, 2> packet_size;
  std::array<std::array<StatCounter, idx(OversizeAction::kCount)>, 2> oversized;
  std::array<StatCounter, 2> memory_refusals;      // payload can never fit memory_limit
  std::array<StatCounter, 2> allocation_failures;  // the system refused the buffer
  std::array<StatCounter, idx(TimeoutKind::kCount)> timeouts;
  std::array<StatCounter, idx(SysOp::kCount)> eintr_retries;
  std::array<StatCounter, idx(SysOp::kCount)> io_errors;
  StatCounter sequence_errors;
  std::array<StatCounter, kCommandLabelCount> commands;
  std::array<StatHistogram<kDurationBuckets.size()>, kCommandLabelCount> command_duration;
  StatCounter tracker_lost;
  std::array<StatCounter, idx(TlsMode::kCount)> tls_sessions;
  StatCounter compressed_sessions;

  // Connect failures by upstream address. Rare, and the set of upstreams can
  // change on reload, so a locked map is fine here.
  void count_connect_error(const std::string& upstream);
  // Exports `upstream` at zero before its first failure.
  void seed_upstream(const std::string& upstream);
  std::map<std::string, std::uint64_t> connect_errors() const;

 private:
  mutable std::mutex errors_mu_;
  std::map<std::string, std::uint64_t> connect_errors_;
};

// All of one worker's metrics, one ListenerStats per configured listener.
struct WorkerStats {
  explicit WorkerStats(std::size_t count) : listeners(count) {}
  std::vector<ListenerStats> listeners;
};

}  // namespace sluice
