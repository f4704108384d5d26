// The Grafana dashboard (docker/grafana/dashboards/sluice.json): valid JSON, real metric names,
// live queries.
#include <doctest/doctest.h>

#include <cctype>
#include <chrono>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/free_port.h"
#include "tests/support/json_value.h"
#include "tests/support/mariadb_server.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/mysql_conn.h"
#include "tests/support/prometheus_server.h"
#include "tests/support/sluice_process.h"
#include "tests/support/temp_dir.h"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::filesystem::path dashboard_path() {
  return std::filesystem::path(SLUICE_SOURCE_DIR) / "docker" / "grafana" / "dashboards" /
         "sluice.json";
}

JsonValue load_dashboard() {
  const std::string text = read_file(dashboard_path());
  REQUIRE_MESSAGE(!text.empty(), "cannot read ", dashboard_path().string());
  std::string error;
  auto doc = parse_json(text, &error);
  REQUIRE_MESSAGE(doc.has_value(), dashboard_path().string(), " is not valid JSON: ", error);
  REQUIRE(doc->is_object());
  return *doc;
}

bool is_ident_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':';
}
bool is_ident_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':';
}

// The metric names a PromQL expression selects. String literals, label
// matchers {...}, ranges [...], Grafana variables ($x, ${x}), numbers,
// keywords, grouping label lists (by/without/on/ignoring/group_left/
// group_right (...)) and anything called like a function are not names.
std::set<std::string> promql_metric_names(const std::string& expr) {
  static const std::set<std::string> kKeywords = {
      "by",           "without", "on",   "ignoring", "group_left", "group_right", "and",
      "or",           "unless",  "bool", "offset",   "inf",        "nan",         "sum",
      "min",          "max",     "avg",  "group",    "stddev",     "stdvar",      "count",
      "count_values", "bottomk", "topk", "quantile", "atan2"};
  static const std::set<std::string> kGrouping = {"by",       "without",    "on",
                                                  "ignoring", "group_left", "group_right"};
  std::set<std::string> names;
  const std::size_t n = expr.size();
  std::size_t i = 0;
  auto skip_balanced = [&](char open, char close) {
    int depth = 0;
    for (; i < n; ++i) {
      if (expr[i] == open) ++depth;
      if (expr[i] == close && --depth == 0) {
        ++i;
        return;
      }
      if (expr[i] == '"' || expr[i] == '\'') {  // a quoted '}' inside a matcher
        const char q = expr[i++];
        while (i < n && expr[i] != q) i += expr[i] == '\\' ? 2 : 1;
      }
    }
  };
  while (i < n) {
    const char c = expr[i];
    if (c == '"' || c == '\'' || c == '`') {
      ++i;
      while (i < n && expr[i] != c) i += (expr[i] == '\\' && c != '`') ? 2 : 1;
      ++i;
    } else if (c == '{') {
      skip_balanced('{', '}');
    } else if (c == '[') {
      skip_balanced('[', ']');
    } else if (c == '$') {
      ++i;
      if (i < n && expr[i] == '{') {
        skip_balanced('{', '}');
      } else {
        while (i < n && is_ident_char(expr[i])) ++i;
      }
    } else if (std::isdigit(static_cast<unsigned char>(c)) ||
               (c == '.' && i + 1 < n && std::isdigit(static_cast<unsigned char>(expr[i + 1])))) {
      while (i < n && (std::isalnum(static_cast<unsigned char>(expr[i])) || expr[i] == '.')) ++i;
    } else if (is_ident_start(c)) {
      const std::size_t start = i;
      while (i < n && is_ident_char(expr[i])) ++i;
      const std::string word = expr.substr(start, i - start);
      std::size_t j = i;
      while (j < n && std::isspace(static_cast<unsigned char>(expr[j]))) ++j;
      const bool called = j < n && expr[j] == '(';
      if (kGrouping.count(word) != 0) {
        if (called) {  // by (a, b): label names, not metrics
          i = j;
          skip_balanced('(', ')');
        }
      } else if (kKeywords.count(word) == 0 && !called) {
        names.insert(word);
      }
    } else {
      ++i;
    }
  }
  return names;
}

// Every PromQL query of the dashboard: panel targets' "expr" (rows' nested
// panels included) and query variables' definitions.
struct DashboardQuery {
  std::string where;
  std::string expr;
};

std::vector<DashboardQuery> dashboard_queries(const JsonValue& dash) {
  std::vector<DashboardQuery> out;
  std::vector<const JsonValue*> panels;
  auto add_panels = [&](const JsonValue* list, auto& self) -> void {
    if (list == nullptr || !list->is_array()) return;
    for (const JsonValue& p : list->items()) {
      panels.push_back(&p);
      self(p.get("panels"), self);
    }
  };
  add_panels(dash.get("panels"), add_panels);
  for (const JsonValue* p : panels) {
    const JsonValue* targets = p->get("targets");
    if (targets == nullptr) continue;
    for (const JsonValue& t : targets->items()) {
      if (const JsonValue* e = t.get("expr"); e != nullptr && e->is_string()) {
        out.push_back({"panel '" + p->string_or("title") + "'", e->as_string()});
      }
    }
  }
  // Every "expr" in the file is a panel target's (none hides elsewhere).
  CHECK(find_members(dash, "expr").size() == out.size());
  if (const JsonValue* templating = dash.get("templating")) {
    if (const JsonValue* list = templating->get("list")) {
      for (const JsonValue& v : list->items()) {
        if (v.string_or("type") != "query") continue;
        std::string q = v.string_or("definition");
        if (const JsonValue* query = v.get("query"); query != nullptr) {
          if (query->is_string()) q = query->as_string();
          if (query->is_object()) q = query->string_or("query", q);
        }
        // label_values(metric, label): the metric is the selector.
        const std::string prefix = "label_values(";
        if (q.rfind(prefix, 0) == 0) {
          const std::size_t comma = q.find(',');
          q = q.substr(prefix.size(),
                       comma == std::string::npos ? std::string::npos : comma - prefix.size());
        }
        out.push_back({"variable '" + v.string_or("name") + "'", q});
      }
    }
  }
  return out;
}

// The metric names in sluice's exposition: families (# TYPE) and sample names.
std::set<std::string> exported_names(const std::string& exposition) {
  std::set<std::string> names;
  for (const Sample& s : parse_samples(exposition)) names.insert(s.name);
  std::size_t pos = 0;
  while ((pos = exposition.find("# TYPE ", pos)) != std::string::npos) {
    pos += 7;
    const std::size_t end = exposition.find(' ', pos);
    names.insert(exposition.substr(pos, end - pos));
  }
  return names;
}

// A histogram's _bucket/_sum/_count name back to its family.
std::string family_of(const std::string& name, const std::set<std::string>& exported) {
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string s = suffix;
    if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
      const std::string base = name.substr(0, name.size() - s.size());
      if (exported.count(base) != 0) return base;
    }
  }
  return name;
}

TEST_CASE("metrics dashboard: the PromQL name extractor finds metrics and nothing else") {
  using S = std::set<std::string>;
  CHECK(promql_metric_names("sluice_up") == S{"sluice_up"});
  CHECK(promql_metric_names(
            "sum by (command) "
            "(rate(sluice_commands_total{listener=~\"$listener\"}[$__rate_interval]))") ==
        S{"sluice_commands_total"});
  CHECK(promql_metric_names(
            "histogram_quantile(0.99, sum by (le, command) (rate(a_bucket{x=\"}\"}[5m])))") ==
        S{"a_bucket"});
  CHECK(promql_metric_names(
            "sum(rate(a_sum[1m])) / sum without (op) (rate(b_count[${__rate_interval}]))") ==
        S{"a_sum", "b_count"});
  CHECK(promql_metric_names("x > bool 1e3 and on (listener) y offset 5m") == S{"x", "y"});
  CHECK(promql_metric_names("max by (version) (sluice_build_info)") == S{"sluice_build_info"});
  CHECK(promql_metric_names("sum(sluice_typo_total)") == S{"sluice_typo_total"});
}

TEST_CASE("metrics dashboard: the Grafana JSON parses and every query names an exported metric") {
  const JsonValue dash = load_dashboard();
  // Grafana 10's dashboard model.
  const JsonValue* schema = dash.get("schemaVersion");
  REQUIRE(schema != nullptr);
  CHECK(schema->as_number() >= 36);
  CHECK(dash.string_or("title") != "");
  CHECK(dash.string_or("uid") != "");
  const JsonValue* panels = dash.get("panels");
  REQUIRE((panels != nullptr && panels->is_array()));

  // A Prometheus data source: the ${DS_PROMETHEUS} variable or the provisioned uid "prometheus".
  bool ds_variable = false;
  if (const JsonValue* t = dash.get("templating"); t != nullptr && t->get("list") != nullptr) {
    for (const JsonValue& v : t->get("list")->items()) {
      if (v.string_or("name") == "DS_PROMETHEUS" && v.string_or("type") == "datasource" &&
          v.string_or("query") == "prometheus") {
        ds_variable = true;
      }
    }
  }
  std::set<int> ids;
  int graph_panels = 0;
  for (const JsonValue& p : panels->items()) {
    const std::string title = p.string_or("title");
    CAPTURE(title);
    const JsonValue* id = p.get("id");
    REQUIRE(id != nullptr);
    CHECK_MESSAGE(ids.insert(static_cast<int>(id->as_number())).second, "duplicate panel id");
    const JsonValue* grid = p.get("gridPos");
    REQUIRE(grid != nullptr);
    CHECK(grid->get("x")->as_number() + grid->get("w")->as_number() <= 24);
    if (p.string_or("type") == "row") continue;
    ++graph_panels;
    const JsonValue* ds = p.get("datasource");
    REQUIRE(ds != nullptr);
    CHECK(ds->string_or("type") == "prometheus");
    const std::string uid = ds->string_or("uid");
    CHECK((uid == "prometheus" || (uid == "${DS_PROMETHEUS}" && ds_variable)));
    const JsonValue* targets = p.get("targets");
    REQUIRE((targets != nullptr && targets->size() > 0));
    for (const JsonValue& t : targets->items()) {
      CHECK(t.string_or("expr") != "");
      CHECK(t.string_or("refId") != "");
    }
  }
  CHECK(graph_panels >= 10);

  // Every metric a query names is one sluice exports.
  SluiceProcess sluice({.upstream_ports = {free_port()}});
  const std::string exposition = scrape_metrics(sluice.metrics_port());
  const std::set<std::string> exported = exported_names(exposition);
  std::set<std::string> used_families;
  const auto queries = dashboard_queries(dash);
  REQUIRE(queries.size() >= 10);
  for (const DashboardQuery& q : queries) {
    CAPTURE(q.where);
    CAPTURE(q.expr);
    const auto names = promql_metric_names(q.expr);
    CHECK_MESSAGE(!names.empty(), "query selects no metric");
    for (const std::string& name : names) {
      CHECK_MESSAGE(exported.count(name) != 0, "'", name, "' is not in sluice's /metrics");
      used_families.insert(family_of(name, exported));
    }
  }

  // The panels the issue asks for, by what they compute.
  auto any_expr = [&](const std::string& a, const std::string& b = "") {
    for (const DashboardQuery& q : queries) {
      if (q.expr.find(a) != std::string::npos && q.expr.find(b) != std::string::npos) return true;
    }
    return false;
  };
  CHECK_MESSAGE(any_expr("rate(sluice_commands_total", "by (command)"), "QPS by command");
  for (const std::string quantile : {"0.50", "0.95", "0.99"}) {
    CHECK_MESSAGE(
        any_expr("histogram_quantile(" + quantile, "sluice_command_duration_seconds_bucket"), "p",
        quantile, " latency from the histogram");
  }
  CHECK_MESSAGE(any_expr("rate(sluice_bytes_total", "by (direction)"), "bytes/s per direction");
  CHECK_MESSAGE(any_expr("sluice_connections_active"), "active connections");
  CHECK_MESSAGE(any_expr("sluice_connections_rejected_total", "by (reason)"), "rejections");
  CHECK_MESSAGE(any_expr("sluice_timeouts_total", "by (kind)"), "timeouts by kind");
  CHECK_MESSAGE(any_expr("sluice_oversized_packets_total"), "oversized packets");
  CHECK_MESSAGE(any_expr("sluice_eintr_retries_total"), "EINTR retries");
  CHECK_MESSAGE(any_expr("sluice_buffered_bytes"), "buffered bytes");
  CHECK_MESSAGE(any_expr("sluice_memory_limit_refusals_total"), "memory_limit refusals");
  CHECK_MESSAGE(any_expr("sluice_allocation_failures_total"), "allocation failures");
  std::string families;
  for (const auto& f : used_families) families += " " + f;
  MESSAGE(queries.size(), " queries over ", used_families.size(), " families:", families);
}

TEST_CASE("metrics dashboard: every query runs on a real Prometheus scraping sluice") {
  const JsonValue dash = load_dashboard();
  const auto queries = dashboard_queries(dash);
  MariaDbServer server;
  SluiceProcess sluice({.upstream_ports = {server.port()}});
  PrometheusServer prom(sluice.metrics_port());
  {
    MysqlConn conn(ConnectOptions{.port = sluice.port()});
    for (int i = 0; i < 50; ++i) conn.scalar("SELECT " + std::to_string(i));
  }
  // Enough scrapes for rate() over the window used below.
  const auto deadline = Clock::now() + 60s;
  std::optional<double> scrapes;
  while (Clock::now() < deadline) {
    scrapes = prom.query_scalar("count_over_time(up{job=\"sluice\"}[1m])");
    if (scrapes && *scrapes >= 4) break;
    std::this_thread::sleep_for(500ms);
  }
  REQUIRE_MESSAGE((scrapes && *scrapes >= 4), tail_lines(prom.log_text(), 20));

  auto substitute = [](std::string q) {
    const std::vector<std::pair<std::string, std::string>> vars = {
        {"$__rate_interval", "30s"}, {"${__rate_interval}", "30s"}, {"$__interval", "30s"},
        {"$__range", "5m"},          {"$listener", ".*"},           {"${listener}", ".*"}};
    for (const auto& [from, to] : vars) {
      for (std::size_t p = q.find(from); p != std::string::npos; p = q.find(from, p + to.size())) {
        q.replace(p, from.size(), to);
      }
    }
    return q;
  };
  for (const DashboardQuery& q : queries) {
    const std::string expr = substitute(q.expr);
    CAPTURE(q.where);
    CAPTURE(expr);
    CHECK_MESSAGE(expr.find('$') == std::string::npos, "unsubstituted Grafana variable");
    std::vector<PromSample> result;
    CHECK_NOTHROW(result = prom.query(expr));
    CHECK_MESSAGE(!result.empty(), "the query returns no series");
  }
}

}  // namespace
}  // namespace sluice::test
