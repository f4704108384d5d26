// sluice's exposition checked by Prometheus's own tools: promtool's linter and a real scraping
// server.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/free_port.h"
#include "tests/support/mariadb_server.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/mysql_conn.h"
#include "tests/support/prometheus_server.h"
#include "tests/support/raw_mysql.h"
#include "tests/support/sluice_process.h"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string describe(const ProcessResult& r) {
  return r.status.describe() + (r.timed_out ? " (timed out)" : "") + "\nstdout:\n" + r.out +
         "\nstderr:\n" + r.err;
}

// Polls `query` until `ok` holds for its single value (nullopt: no series yet).
std::optional<double> poll_prometheus(PrometheusServer& prom, const std::string& query,
                                      const std::function<bool(double)>& ok,
                                      std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  std::optional<double> v;
  while (Clock::now() < deadline) {
    v = prom.query_scalar(query);
    if (v && ok(*v)) return v;
    std::this_thread::sleep_for(250ms);
  }
  return v;
}

TEST_CASE("metrics prometheus: promtool check metrics accepts sluice's exposition") {
  MariaDbServer server;
  SluiceProcess sluice({.upstream_ports = {server.port()}});
  // At start-up (every series at zero) and after some traffic (histograms filled).
  const std::string idle = scrape_metrics(sluice.metrics_port());
  {
    MysqlConn conn(ConnectOptions{.port = sluice.port()});
    for (int i = 0; i < 20; ++i) conn.scalar("SELECT " + std::to_string(i));
    conn.scalar("SELECT REPEAT('x', 100000)");
  }
  const std::string busy = scrape_metrics(sluice.metrics_port());
  for (const std::string* text : {&idle, &busy}) {
    const ProcessResult check = promtool_check_metrics(*text);
    MESSAGE("promtool check metrics (", std::string(text == &idle ? "start-up" : "after traffic"),
            "): ", describe(check));
    CHECK_MESSAGE(check.status.success(), describe(check));
    CHECK_MESSAGE(check.out.empty(), describe(check));
    CHECK_MESSAGE(check.err.empty(), describe(check));
  }
}

TEST_CASE(
    "metrics prometheus: a real Prometheus sees packets grow and active sessions return to 0") {
  MariaDbServer server;
  SluiceProcess sluice({.upstream_ports = {server.port()}});
  PrometheusServer prom(sluice.metrics_port());

  // The target is up: Prometheus scraped it successfully.
  const auto up = poll_prometheus(
      prom, "up{job=\"sluice\"}", [](double v) { return v == 1; }, 60s);
  REQUIRE_MESSAGE(up.has_value(), "Prometheus never scraped sluice\n",
                  tail_lines(prom.log_text(), 20));
  REQUIRE(*up == 1);
  const std::string packets = "sum(sluice_packets_total{listener=\"main\"})";
  const auto initial = poll_prometheus(
      prom, packets, [](double) { return true; }, 30s);
  REQUIRE(initial.has_value());
  CHECK(*initial == 0);

  // Clients keep querying while Prometheus watches.
  std::atomic<bool> stop{false};
  std::atomic<long> queries{0};
  std::vector<std::thread> clients;
  std::atomic<int> failures{0};
  for (int t = 0; t < 2; ++t) {
    clients.emplace_back([&, t] {
      try {
        MysqlConn conn(ConnectOptions{.port = sluice.port()});
        while (!stop.load()) {
          conn.scalar("SELECT " + std::to_string(t));
          ++queries;
          std::this_thread::sleep_for(5ms);
        }
      } catch (const std::exception&) {
        ++failures;
      }
    });
  }
  // While they run: active sessions show, and the packet counter grows from
  // one Prometheus sample to a later one.
  const auto active = poll_prometheus(
      prom, "sluice_connections_active{listener=\"main\"}", [](double v) { return v == 2; }, 30s);
  CHECK(active == std::optional<double>(2));
  const auto first = poll_prometheus(
      prom, packets, [](double v) { return v > 0; }, 30s);
  REQUIRE(first.has_value());
  CHECK(*first > 0);
  const double seen = *first;
  const auto later = poll_prometheus(
      prom, packets, [&](double v) { return v > seen; }, 30s);
  REQUIRE(later.has_value());
  CHECK(*later > seen);
  const auto rate = poll_prometheus(
      prom, "sum(rate(sluice_packets_total{listener=\"main\"}[5s]))",
      [](double v) { return v > 0; }, 30s);
  CHECK((rate.has_value() && *rate > 0));
  const auto query_rate = poll_prometheus(
      prom, "sum(rate(sluice_commands_total{listener=\"main\",command=\"COM_QUERY\"}[5s]))",
      [](double v) { return v > 0; }, 30s);
  CHECK((query_rate.has_value() && *query_rate > 0));

  stop = true;
  for (auto& c : clients) c.join();
  CHECK(failures.load() == 0);
  MESSAGE("clients ran ", queries.load(), " queries; Prometheus saw packets go ", *initial, " -> ",
          seen, " -> ", *later);

  // After they leave, Prometheus sees the gauge come back to 0.
  const auto gone = poll_prometheus(
      prom, "sluice_connections_active{listener=\"main\"}", [](double v) { return v == 0; }, 30s);
  CHECK(gone == std::optional<double>(0));
  // The final packet count matches sluice's own endpoint once both are at rest.
  const double direct = metric_sum(scrape_metrics(sluice.metrics_port()), "sluice_packets_total",
                                   {{"listener", "main"}});
  const auto settled = poll_prometheus(
      prom, packets, [&](double v) { return v == direct; }, 30s);
  CHECK(settled == std::optional<double>(direct));
  // Histograms are usable by histogram_quantile.
  const auto p99 = prom.query(
      "histogram_quantile(0.99, sum by (le) (rate(sluice_command_duration_seconds_bucket"
      "{listener=\"main\",command=\"COM_QUERY\"}[1m])))");
  CHECK(p99.size() == 1);
}

}  // namespace
}  // namespace sluice::test
