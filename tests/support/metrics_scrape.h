// Reading sluice's Prometheus endpoint in tests: a tiny HTTP client and sample lookup.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::test {

using Labels = std::map<std::string, std::string>;

struct HttpResponse {
  int status = 0;  // 0 when no HTTP response arrived
  std::string headers;
  std::string body;
};

// GET http://127.0.0.1:<port><path> with HTTP/1.0 (the server closes when
// done, so no chunked encoding). Never throws; status 0 on connection trouble.
HttpResponse http_request(int port, std::string_view path,
                          std::chrono::milliseconds timeout = std::chrono::seconds(10));
// The same with extra request header lines such as "Authorization: Basic ...".
HttpResponse http_request_with_headers(
    int port, std::string_view path, const std::vector<std::string>& headers,
    std::chrono::milliseconds timeout = std::chrono::seconds(10));
// The body of a 200 response; throws std::runtime_error (with the status) otherwise.
std::string http_get(int port, std::string_view path = "/metrics",
                     std::chrono::milliseconds timeout = std::chrono::seconds(10));

// One sample line of the text exposition format.
struct Sample {
  std::string name;
  Labels labels;
  double value = 0;
};
// Every sample in `text` (comments and blank lines skipped).
std::vector<Sample> parse_samples(std::string_view text);

// The sample named `name` whose labels include all of `labels` (others may be
// present). Exactly one sample must match: throws std::runtime_error naming
// the metric and listing what exists when none or several match. A NaN value
// is returned as NaN.
double metric_value(const std::string& text, std::string_view name, const Labels& labels = {});
// Like metric_value, but nullopt when no sample matches (still throws when several do).
std::optional<double> find_metric(const std::string& text, std::string_view name,
                                  const Labels& labels = {});
bool metric_exists(const std::string& text, std::string_view name, const Labels& labels = {});
// The sum over every sample that matches (0 when none does), e.g. a counter across labels.
double metric_sum(const std::string& text, std::string_view name, const Labels& labels = {});

}  // namespace sluice::test
