// Reads one YAML map of the config into typed values; every problem gets its key path and line.
#include "common/config_section.h"

#include <cctype>
#include <charconv>

#include "common/units.h"

namespace sluice::config_yaml {

std::string join_key(std::string_view parent, std::string_view name) {
  if (parent.empty()) return std::string(name);
  return std::string(parent) + "." + std::string(name);
}

std::string index_key(std::string_view parent, std::string_view index) {
  return std::string(parent) + "[" + std::string(index) + "]";
}

std::string single_quoted(std::string_view text) {
  return "'" + std::string(text) + "'";
}

bool iequals(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  });
}

bool contains(Names names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::optional<std::uint64_t> parse_uint(std::string_view text) {
  std::uint64_t value = 0;
  const char* end = text.data() + text.size();
  auto [stop, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc{} || stop != end) return std::nullopt;
  return value;
}

namespace {

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1] ? 1 : 0)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// "unknown key", with the nearest known key when it is probably a typo.
std::string unknown_key_message(std::string_view name, Names allowed) {
  std::string_view best;
  std::size_t best_distance = 3;  // further than two edits is not a typo
  for (std::string_view candidate : allowed) {
    const std::size_t distance = edit_distance(name, candidate);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  if (best.empty()) return "unknown key";
  return "unknown key (did you mean " + single_quoted(best) + "?)";
}

}  // namespace

Section::Section(Checker& checker, const YAML::Node& node, std::string key, Names allowed)
    : checker_(&checker), node_(node), key_(std::move(key)) {
  if (!node.IsDefined() || node.IsNull()) return;  // an empty or absent section: defaults
  if (!node.IsMap()) {
    usable_ = false;
    checker.report(key_, node, "expected a map of settings");
    return;
  }
  for (const auto& pair : node) {
    if (!pair.first.IsScalar()) {
      checker.report(key_, pair.first, "keys must be plain names");
      continue;
    }
    const std::string& name = pair.first.Scalar();
    if (!contains(allowed, name)) {
      checker.report(join_key(key_, name), pair.first, unknown_key_message(name, allowed));
    } else if (find(name) != nullptr) {
      checker.report(join_key(key_, name), pair.first, "duplicate key");
    } else {
      entries_.push_back({name, pair.first, pair.second});
    }
  }
}

const Section::Entry* Section::find(std::string_view name) const {
  for (const Entry& entry : entries_) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

YAML::Node Section::value(std::string_view name) const {
  const Entry* entry = find(name);
  return entry != nullptr ? entry->value : YAML::Node();
}

void Section::report(std::string_view name, std::string message) const {
  const Entry* entry = find(name);
  checker_->report(key(name), entry != nullptr ? entry->key : node_, std::move(message));
}

void Section::report_required(std::string_view name, std::string_view cause,
                              std::string message) const {
  if (has(name)) return report(name, std::move(message));
  const Entry* entry = find(cause);
  checker_->report_caused(key(name), key(cause), entry != nullptr ? entry->key : node_,
                          std::move(message));
}

const std::string* Section::scalar(std::string_view name) const {
  const Entry* entry = find(name);
  if (entry == nullptr) return nullptr;
  const YAML::Node& value = entry->value;
  if (value.IsScalar()) return &value.Scalar();
  if (value.IsNull()) {
    report(name, "missing value");
  } else {
    report(name, value.IsMap() ? "expected a single value, not a map"
                               : "expected a single value, not a list");
  }
  return nullptr;
}

void Section::size(std::string_view name, std::uint64_t min, std::uint64_t max,
                   std::uint64_t& out) const {
  const std::string* text = scalar(name);
  if (text == nullptr) return;
  const std::optional<std::uint64_t> bytes = parse_size(*text);
  if (!bytes) {
    return report(name, "invalid size " + single_quoted(*text) + " (bytes, or K, M or G)");
  }
  if (*bytes < min) return report(name, "must be at least " + format_size(min));
  if (*bytes > max) return report(name, "must be at most " + format_size(max));
  out = *bytes;
}

void Section::duration(std::string_view name, Millis min, Millis max, Millis& out) const {
  const std::string* text = scalar(name);
  if (text == nullptr) return;
  const std::optional<Millis> value = parse_duration(*text);
  if (!value) {
    return report(name,
                  "invalid duration " + single_quoted(*text) + " (seconds, or ms, s, m or h)");
  }
  if (*value < min) {
    return report(name, min == Millis{1} ? "must be greater than 0"
                                         : "must be at least " + format_duration(min));
  }
  if (*value > max) return report(name, "must be at most " + format_duration(max));
  out = *value;
}

void Section::text(std::string_view name, std::string& out) const {
  if (const std::string* text = scalar(name)) out = *text;
}

void Section::address(std::string_view name, HostPort& out) const {
  const std::string* text = scalar(name);
  if (text == nullptr) return;
  std::string why;
  const std::optional<HostPort> parsed = HostPort::parse(*text, &why);
  if (!parsed) return report(name, "invalid address " + single_quoted(*text) + ": " + why);
  out = *parsed;
}

}  // namespace sluice::config_yaml
