// The Prometheus view: sums every worker's stats at scrape time and serves them over HTTP.
#include "proxy/metrics.h"

#include "proxy/runtime_config.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <thread>

namespace sluice {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;

ClientMetric::Label label(std::string_view name, std::string_view value) {
  return {std::string(name), std::string(value)};
}

ClientMetric counter(std::vector<ClientMetric::Label> labels, double value) {
  ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = value;
  return m;
}

ClientMetric gauge(std::vector<ClientMetric::Label> labels, double value) {
  ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  return m;
}

// Sums one histogram across workers; `pick` selects it from a ListenerStats.
template <std::size_t N, typename Pick>
ClientMetric histogram(const std::vector<const WorkerStats*>& workers, std::size_t listener,
                       const std::array<double, N>& bounds, Pick pick,
                       std::vector<ClientMetric::Label> labels) {
  ClientMetric m;
  m.label = std::move(labels);
  std::array<std::uint64_t, N + 1> counts{};
  double sum = 0;
  for (const WorkerStats* w : workers) {
    const auto& h = pick(w->listeners[listener]);
    for (std::size_t i = 0; i <= N; ++i) counts[i] += h.bucket(i);
    sum += h.sum();
  }
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= N; ++i) {
    cumulative += counts[i];
    const double bound = i < N ? bounds[i] : std::numeric_limits<double>::infinity();
    m.histogram.bucket.push_back({cumulative, bound});
  }
  m.histogram.sample_count = cumulative;
  m.histogram.sample_sum = sum;
  return m;
}

template <typename Pick>
double sum_counter(const std::vector<const WorkerStats*>& workers, std::size_t listener,
                   Pick pick) {
  double total = 0;
  for (const WorkerStats* w : workers) total += static_cast<double>(pick(w->listeners[listener]));
  return total;
}

prometheus::MetricType prom_type(MetricType t) {
  switch (t) {
    case MetricType::kCounter:
      return prometheus::MetricType::Counter;
    case MetricType::kGauge:
      return prometheus::MetricType::Gauge;
    case MetricType::kHistogram:
      return prometheus::MetricType::Histogram;
  }
  return prometheus::MetricType::Untyped;
}

}  // namespace

MetricsCollector::MetricsCollector(std::vector<std::string> listener_names,
                                   const MemoryBudget& budget, const GlobalStats& globals)
    : listener_names_(std::move(listener_names)), budget_(budget), globals_(globals) {}

MetricFamily MetricsCollector::family(const MetricDef& def) const {
  MetricFamily f;
  f.name = std::string(def.name);
  f.help = std::string(def.help);
  f.type = prom_type(def.type);
  return f;
}

std::vector<MetricFamily> MetricsCollector::Collect() const {
  std::vector<MetricFamily> out;
  for (const MetricDef& def : metric_table()) {
    MetricFamily f = family(def);
    switch (def.id) {
      case MetricId::kBuildInfo:
        f.metric.push_back(gauge({label("version", SLUICE_VERSION)}, 1));
        break;
      case MetricId::kBufferedBytes:
        f.metric.push_back(gauge({}, static_cast<double>(budget_.packet_bytes())));
        break;
      case MetricId::kMemoryLimitWaits:
        f.metric.push_back(counter({}, static_cast<double>(budget_.waits())));
        break;
      case MetricId::kConfigReloads:
        f.metric.push_back(
            counter({label("result", "ok")}, static_cast<double>(globals_.reloads_ok)));
        f.metric.push_back(
            counter({label("result", "failed")}, static_cast<double>(globals_.reloads_failed)));
        break;
      default:
        for (std::size_t l = 0; l < listener_names_.size(); ++l) collect_listener(def.id, l, f);
    }
    out.push_back(std::move(f));
  }
  return out;
}

void MetricsCollector::collect_listener(MetricId id, std::size_t l, MetricFamily& f) const {
  const auto& w = workers_;
  const auto lis = label("listener", listener_names_[l]);
  auto by_name = [&](auto names, std::string_view key, auto pick) {
    for (std::size_t i = 0; i < names.size(); ++i) {
      const double v = sum_counter(w, l, [&](const ListenerStats& s) { return pick(s, i); });
      f.metric.push_back(counter({lis, label(key, names[i])}, v));
    }
  };
  switch (id) {
    case MetricId::kConnectionsTotal:
      f.metric.push_back(
          counter({lis}, sum_counter(w, l, [](auto& s) { return s.connections_total.get(); })));
      break;
    case MetricId::kConnectionsActive:
      f.metric.push_back(
          gauge({lis}, sum_counter(w, l, [](auto& s) { return s.connections_active.get(); })));
      break;
    case MetricId::kConnectionsRejected:
      by_name(kRejectReasonNames, "reason",
              [](auto& s, std::size_t i) { return s.rejected[i].get(); });
      break;
    case MetricId::kUpstreamConnectSeconds:
      f.metric.push_back(histogram(w, l, kConnectBuckets,
                                   [](auto& s) -> auto& { return s.upstream_connect; }, {lis}));
      break;
    case MetricId::kUpstreamConnectErrors: {
      std::map<std::string, std::uint64_t> merged;
      for (const WorkerStats* ws : w) {
        for (const auto& [upstream, n] : ws->listeners[l].connect_errors()) merged[upstream] += n;
      }
      for (const auto& [upstream, n] : merged) {
        f.metric.push_back(counter({lis, label("upstream", upstream)}, static_cast<double>(n)));
      }
      break;
    }
    case MetricId::kPackets:
      by_name(kDirectionNames, "direction",
              [](auto& s, std::size_t i) { return s.packets[i].get(); });
      break;
    case MetricId::kBytes:
      by_name(kDirectionNames, "direction",
              [](auto& s, std::size_t i) { return s.bytes[i].get(); });
      break;
    case MetricId::kPacketSize:
      for (std::size_t d = 0; d < 2; ++d) {
        f.metric.push_back(
            histogram(w, l, kPacketSizeBuckets, [d](auto& s) -> auto& { return s.packet_size[d]; },
                      {lis, label("direction", kDirectionNames[d])}));
      }
      break;
    case MetricId::kOversizedPackets:
      for (std::size_t d = 0; d < 2; ++d) {
        for (std::size_t a = 0; a < kOversizeActionNames.size(); ++a) {
          const double v = sum_counter(w, l, [&](auto& s) { return s.oversized[d][a].get(); });
          f.metric.push_back(counter({lis, label("direction", kDirectionNames[d]),
                                      label("action", kOversizeActionNames[a])},
                                     v));
        }
      }
      break;
    case MetricId::kMemoryLimitRefusals:
      by_name(kDirectionNames, "direction",
              [](auto& s, std::size_t i) { return s.memory_refusals[i].get(); });
      break;
    case MetricId::kAllocationFailures:
      by_name(kDirectionNames, "direction",
              [](auto& s, std::size_t i) { return s.allocation_failures[i].get(); });
      break;
    case MetricId::kTimeouts:
      by_name(kTimeoutKindNames, "kind",
              [](auto& s, std::size_t i) { return s.timeouts[i].get(); });
      break;
    case MetricId::kEintrRetries:
      by_name(kSysOpNames, "op", [](auto& s, std::size_t i) { return s.eintr_retries[i].get(); });
      break;
    case MetricId::kIoErrors:
      by_name(kSysOpNames, "op", [](auto& s, std::size_t i) { return s.io_errors[i].get(); });
      break;
    case MetricId::kSequenceErrors:
      f.metric.push_back(
          counter({lis}, sum_counter(w, l, [](auto& s) { return s.sequence_errors.get(); })));
      break;
    case MetricId::kCommands:
      for (std::size_t c = 0; c < kCommandLabelCount; ++c) {
        const double v = sum_counter(w, l, [c](auto& s) { return s.commands[c].get(); });
        f.metric.push_back(counter({lis, label("command", command_label(c))}, v));
      }
      break;
    case MetricId::kCommandDuration:
      for (std::size_t c = 0; c < kCommandLabelCount; ++c) {
        f.metric.push_back(histogram(
            w, l, kDurationBuckets, [c](auto& s) -> auto& { return s.command_duration[c]; },
            {lis, label("command", command_label(c))}));
      }
      break;
    case MetricId::kTrackerLost:
      f.metric.push_back(
          counter({lis}, sum_counter(w, l, [](auto& s) { return s.tracker_lost.get(); })));
      break;
    case MetricId::kTlsSessions:
      by_name(kTlsModeNames, "mode",
              [](auto& s, std::size_t i) { return s.tls_sessions[i].get(); });
      break;
    case MetricId::kCompressedSessions:
      f.metric.push_back(
          counter({lis}, sum_counter(w, l, [](auto& s) { return s.compressed_sessions.get(); })));
      break;
    default:
      break;
  }
}

void ListenerStats::count_connect_error(const std::string& upstream) {
  std::lock_guard lock(errors_mu_);
  ++connect_errors_[upstream];
}

void ListenerStats::seed_upstream(const std::string& upstream) {
  std::lock_guard lock(errors_mu_);
  connect_errors_.try_emplace(upstream, 0);
}

std::map<std::string, std::uint64_t> ListenerStats::connect_errors() const {
  std::lock_guard lock(errors_mu_);
  return connect_errors_;
}

namespace {

std::string read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) throw std::runtime_error("cannot read " + path);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  return line;
}

}  // namespace

namespace {

// civetweb listens as soon as the Exposer exists, a moment before the
// collector is registered: a scrape in that moment would get a 404 (a failed
// scrape when sluice restarts under a running Prometheus). Requests wait for
// the registration instead. One endpoint per process, hence a flag here.
std::atomic<bool> g_endpoint_ready{false};

int hold_until_ready(mg_connection*) {
  for (int i = 0; i < 1000 && !g_endpoint_ready.load(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return 0;  // let civetweb dispatch the request as usual
}

}  // namespace

MetricsServer::MetricsServer(const MetricsConfig& config,
                             std::shared_ptr<MetricsCollector> collector)
    : collector_(std::move(collector)) {
  g_endpoint_ready.store(false);
  // A wildcard address is reached through loopback.
  wake_host_ = config.listen.host == "0.0.0.0" ? "127.0.0.1"
               : config.listen.host == "::"    ? "::1"
                                               : config.listen.host;
  callbacks_.begin_request = hold_until_ready;
  // Read before civetweb starts: throwing after it would wait out its two-second stop (see the
  // destructor) before sluice could report the error.
  const std::string password =
      config.username.empty() ? std::string() : read_first_line(config.password_file);
  exposer_ = std::make_unique<prometheus::Exposer>(config.listen.text(), 2, &callbacks_);
  if (!config.username.empty()) {
    const std::string user = config.username;
    exposer_->RegisterAuth(
        [user, password](const std::string& u, const std::string& p) {
          return u == user && p == password;
        },
        "sluice", config.path);
  }
  exposer_->RegisterCollectable(collector_, config.path);
  g_endpoint_ready.store(true);
}

int MetricsServer::port() const {
  const std::vector<int> ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

namespace {

// Sends one complete request to host:port and hangs up, waiting at most 50 ms.
// A whole request lets civetweb's worker finish at once instead of waiting
// out its request timeout.
void touch(const std::string& host, int port) {
  ResolvedAddress addr;
  std::string error;
  if (!resolve_address({host, static_cast<std::uint16_t>(port)}, &addr, &error)) return;
  const int fd = ::socket(addr.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr.addr), addr.len) != 0) {
    pollfd p{fd, POLLOUT, 0};
    ::poll(&p, 1, 50);
  }
  static constexpr char kRequest[] = "GET / HTTP/1.0\r\n\r\n";
  [[maybe_unused]] const ssize_t n = ::send(fd, kRequest, sizeof kRequest - 1, MSG_NOSIGNAL);
  ::close(fd);
}

}  // namespace

// civetweb 1.15 stops only when its listening thread's poll times out (up to
// two seconds; fixed in 1.16); a request to the endpoint wakes that thread at
// once, so shutdown does not hold the port (and the process) that long.
MetricsServer::~MetricsServer() {
  const int bound = port();
  std::atomic<bool> stopped{false};
  std::thread waker([&] {
    while (!stopped.load()) {
      touch(wake_host_, bound);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  exposer_.reset();
  stopped.store(true);
  waker.join();
}

}  // namespace sluice
