// A real Prometheus (Debian's /usr/bin/prometheus) scraping sluice, plus promtool and HTTP helpers.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tests/support/metrics_scrape.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace sluice::test {

// "Authorization: Basic base64(user:password)".
std::string basic_auth_header(std::string_view user, std::string_view password);
std::string base64_encode(std::string_view data);
// Percent-encodes everything but RFC 3986 unreserved characters.
std::string url_encode(std::string_view text);

// GET /metrics (or `path`) from sluice's metrics port, retrying for up to
// `patience` while the answer is a 404 or no answer at all: right after the
// port starts listening, sluice may not have registered its collector yet
// (see "metrics: /metrics answers 200 as soon as the metrics port listens").
// Throws like http_get once patience runs out.
std::string scrape_metrics(int port, std::string_view path = "/metrics",
                           std::chrono::milliseconds patience = std::chrono::seconds(5));

// `promtool check metrics` on `exposition` (given on stdin).
ProcessResult promtool_check_metrics(const std::string& exposition);

// One series of an instant-vector answer.
struct PromSample {
  Labels metric;
  double value = 0;
};

// Starts prometheus on a free loopback port, scraping 127.0.0.1:<target_port>
// <metrics_path> every second (job "sluice"), with its TSDB and config in a temp
// dir. The constructor returns once /-/ready answers 200 (throws with the log
// tail otherwise); the destructor kills it.
class PrometheusServer {
 public:
  explicit PrometheusServer(int target_port, std::string metrics_path = "/metrics");
  ~PrometheusServer();
  PrometheusServer(const PrometheusServer&) = delete;
  PrometheusServer& operator=(const PrometheusServer&) = delete;

  int port() const { return port_; }
  std::string log_text() const { return read_file(dir_ / "prometheus.log"); }

  // GET /api/v1/query?query=<promql>. The "data.result" of a vector answer;
  // throws std::runtime_error when the HTTP status or "status" is not success.
  std::vector<PromSample> query(std::string_view promql);
  // The single value of a query expected to return one series (e.g. sum(...)),
  // nullopt when it returns none (not scraped yet); throws when it returns several.
  std::optional<double> query_scalar(std::string_view promql);

 private:
  bool start(int target_port, const std::string& metrics_path, std::string* failure);

  TempDir dir_{"sluice-prom"};
  int port_ = 0;
  ChildProcess process_;
};

}  // namespace sluice::test
