// A real Prometheus (Debian's /usr/bin/prometheus) scraping sluice, plus promtool and HTTP helpers.
#include "tests/support/prometheus_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <thread>

#include "tests/support/free_port.h"
#include "tests/support/json_value.h"

namespace sluice::test {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::string prometheus_binary() {
  const char* p = std::getenv("SLUICE_TEST_PROMETHEUS");
  return p != nullptr && *p != '\0' ? p : "prometheus";
}

}  // namespace

std::string base64_encode(std::string_view data) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < data.size(); i += 3) {
    const std::uint32_t v = (static_cast<std::uint8_t>(data[i]) << 16) |
                            (static_cast<std::uint8_t>(data[i + 1]) << 8) |
                            static_cast<std::uint8_t>(data[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i + 1 == data.size()) {
    const std::uint32_t v = static_cast<std::uint8_t>(data[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == data.size()) {
    const std::uint32_t v =
        (static_cast<std::uint8_t>(data[i]) << 16) | (static_cast<std::uint8_t>(data[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string basic_auth_header(std::string_view user, std::string_view password) {
  return "Authorization: Basic " + base64_encode(std::string(user) + ":" + std::string(password));
}

std::string url_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if ((u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  return out;
}

std::string scrape_metrics(int port, std::string_view path, std::chrono::milliseconds patience) {
  const auto deadline = Clock::now() + patience;
  while (true) {
    const HttpResponse response = http_request(port, path, 10s);
    if (response.status == 200) return response.body;
    const bool transient = response.status == 404 || response.status == 0;
    if (!transient || Clock::now() >= deadline) return http_get(port, path);
    std::this_thread::sleep_for(20ms);
  }
}

ProcessResult promtool_check_metrics(const std::string& exposition) {
  RunOptions options;
  options.stdin_data = exposition;
  return run_process({"promtool", "check", "metrics"}, 60s, options);
}

PrometheusServer::PrometheusServer(int target_port, std::string metrics_path) {
  std::string failure;
  for (int attempt = 1; attempt <= 3; ++attempt) {
    if (start(target_port, metrics_path, &failure)) return;
    process_.kill();
    // Another process may have taken the port between free_port() and bind.
    if (failure.find("address already in use") == std::string::npos) break;
  }
  throw std::runtime_error("prometheus did not start: " + failure);
}

PrometheusServer::~PrometheusServer() {
  if (process_.pid() > 0 && process_.running()) process_.terminate(5s);
}

bool PrometheusServer::start(int target_port, const std::string& metrics_path,
                             std::string* failure) {
  port_ = free_port();
  const std::filesystem::path config = dir_ / "prometheus.yml";
  write_file(config,
             "global:\n"
             "  scrape_interval: 1s\n"
             "  scrape_timeout: 1s\n"
             "  evaluation_interval: 1s\n"
             "scrape_configs:\n"
             "  - job_name: sluice\n"
             "    metrics_path: " +
                 metrics_path +
                 "\n"
                 "    static_configs:\n"
                 "      - targets: ['127.0.0.1:" +
                 std::to_string(target_port) + "']\n");
  std::filesystem::create_directories(dir_ / "data");
  const std::vector<std::string> argv = {
      prometheus_binary(),
      "--config.file=" + config.string(),
      "--storage.tsdb.path=" + (dir_ / "data").string(),
      "--web.listen-address=127.0.0.1:" + std::to_string(port_),
      // The test asks for fresh samples: a stale series must not linger 5 minutes.
      "--query.lookback-delta=5s",
      "--log.level=info",
  };
  SpawnOptions spawn;
  spawn.stdout_path = (dir_ / "prometheus.log").string();
  spawn.stderr_path = spawn.stdout_path;
  spawn.cwd = dir_.str();
  process_ = ChildProcess(argv, spawn);
  const auto deadline = Clock::now() + 90s;
  while (Clock::now() < deadline) {
    if (!process_.running()) {
      *failure = process_.exit_status()->describe() + "; " + shell_quote(argv) + "\n" +
                 tail_lines(log_text(), 20);
      return false;
    }
    if (http_request(port_, "/-/ready", 2s).status == 200) return true;
    std::this_thread::sleep_for(100ms);
  }
  *failure = "not ready after 90 s; " + shell_quote(argv) + "\n" + tail_lines(log_text(), 20);
  return false;
}

std::vector<PromSample> PrometheusServer::query(std::string_view promql) {
  const std::string path = "/api/v1/query?query=" + url_encode(promql);
  const HttpResponse response = http_request(port_, path, 10s);
  const std::string where = "prometheus query '" + std::string(promql) + "'";
  if (response.status != 200) {
    throw std::runtime_error(where + ": HTTP status " + std::to_string(response.status) + " " +
                             response.body);
  }
  std::string error;
  const auto doc = parse_json(response.body, &error);
  if (!doc) throw std::runtime_error(where + ": bad JSON (" + error + "): " + response.body);
  if (doc->string_or("status") != "success") throw std::runtime_error(where + ": " + response.body);
  const JsonValue* data = doc->get("data");
  const JsonValue* result = data != nullptr ? data->get("result") : nullptr;
  if (result == nullptr || !result->is_array() || data->string_or("resultType") != "vector") {
    throw std::runtime_error(where + ": not a vector answer: " + response.body);
  }
  std::vector<PromSample> samples;
  for (const JsonValue& series : result->items()) {
    PromSample sample;
    if (const JsonValue* metric = series.get("metric"); metric != nullptr && metric->is_object()) {
      for (std::size_t i = 0; i < metric->size(); ++i) {
        sample.metric[metric->keys()[i]] = metric->items()[i].as_string();
      }
    }
    const JsonValue* value = series.get("value");
    if (value == nullptr || !value->is_array() || value->size() != 2 ||
        !value->items()[1].is_string()) {
      throw std::runtime_error(where + ": malformed sample: " + response.body);
    }
    const std::string& text = value->items()[1].as_string();
    sample.value = text == "+Inf"   ? HUGE_VAL
                   : text == "-Inf" ? -HUGE_VAL
                                    : std::strtod(text.c_str(), nullptr);
    samples.push_back(std::move(sample));
  }
  return samples;
}

std::optional<double> PrometheusServer::query_scalar(std::string_view promql) {
  const auto samples = query(promql);
  if (samples.empty()) return std::nullopt;
  if (samples.size() > 1) {
    throw std::runtime_error("prometheus query '" + std::string(promql) + "' returned " +
                             std::to_string(samples.size()) + " series, expected one");
  }
  return samples.front().value;
}

}  // namespace sluice::test
