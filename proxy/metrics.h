// The Prometheus view: sums every worker's stats at scrape time and serves them over HTTP.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include <CivetServer.h>
#include <prometheus/client_metric.h>
#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>

#include "common/config.h"
#include "common/memory_budget.h"
#include "proxy/stats.h"

namespace sluice {

// Process-wide values that belong to no worker.
struct GlobalStats {
  std::atomic<std::uint64_t> reloads_ok{0};
  std::atomic<std::uint64_t> reloads_failed{0};
};

class MetricsCollector : public prometheus::Collectable {
 public:
  MetricsCollector(std::vector<std::string> listener_names, const MemoryBudget& budget,
                   const GlobalStats& globals);
  // Workers register their stats once, before serving starts; they outlive the exposer.
  void add_worker(const WorkerStats* stats) { workers_.push_back(stats); }
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  prometheus::MetricFamily family(const MetricDef& def) const;
  void collect_listener(MetricId id, std::size_t listener, prometheus::MetricFamily& out) const;

  std::vector<std::string> listener_names_;
  std::vector<const WorkerStats*> workers_;
  const MemoryBudget& budget_;
  const GlobalStats& globals_;
};

// Owns the HTTP endpoint. Throws at startup if the address cannot be bound.
class MetricsServer {
 public:
  MetricsServer(const MetricsConfig& config, std::shared_ptr<MetricsCollector> collector);
  ~MetricsServer();

  // The port actually bound (what the kernel chose for port 0).
  int port() const;

 private:
  std::shared_ptr<MetricsCollector> collector_;
  CivetCallbacks callbacks_{};  // must outlive the exposer
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::string wake_host_;  // where a connection reaches the endpoint
};

}  // namespace sluice
