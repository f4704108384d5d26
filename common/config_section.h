// Reads one YAML map of the config into typed values; every problem gets its key path and line.
#pragma once

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"
#include "common/config_loader.h"

// Internal to loading the config: used by config_schema.cc and config_loader.cc only.
namespace sluice::config_yaml {

using Names = std::span<const std::string_view>;

template <class E>
struct Choice {
  std::string_view name;
  E value;
};

// "log" + "level" -> "log.level"; a top-level key has no parent.
std::string join_key(std::string_view parent, std::string_view name);
// "listeners" + "0" -> "listeners[0]".
std::string index_key(std::string_view parent, std::string_view index);
std::string single_quoted(std::string_view text);
// Case-insensitive ASCII comparison.
bool iequals(std::string_view a, std::string_view b);
bool contains(Names names, std::string_view name);
// Plain decimal digits only; nullopt for anything else, or when it does not fit.
std::optional<std::uint64_t> parse_uint(std::string_view text);

// Collects problems. Knows which key paths --set replaced, so that problems inside them
// say "(--set)" instead of pointing at a line of the file they did not come from.
class Checker {
 public:
  void report(std::string key, const YAML::Node& at, std::string message) {
    const std::string origin = key;
    report_caused(std::move(key), origin, at, std::move(message));
  }
  // A problem at `key` that the value of `origin` caused (e.g. a missing key another one
  // requires): it is located where `origin` was set, so an override is not blamed on the file.
  void report_caused(std::string key, std::string_view origin, const YAML::Node& at,
                     std::string message) {
    int line = overridden(origin) ? ConfigProblem::kLineOverride : line_of(at);
    // A node without a line that holds an overridden key was created by that override.
    if (line == ConfigProblem::kLineNone && holds_override(origin)) {
      line = ConfigProblem::kLineOverride;
    }
    problems_.push_back({std::move(key), line, std::move(message)});
  }
  void report_override(std::string key, std::string message) {
    problems_.push_back({std::move(key), ConfigProblem::kLineOverride, std::move(message)});
  }
  void add_overridden(std::string key) { overridden_.push_back(std::move(key)); }
  // In file order (--set and line-less problems first), whatever order the schema read them.
  std::vector<ConfigProblem> take() {
    std::stable_sort(
        problems_.begin(), problems_.end(),
        [](const ConfigProblem& a, const ConfigProblem& b) { return a.line < b.line; });
    return std::move(problems_);
  }

 private:
  static int line_of(const YAML::Node& node) {
    if (!node.IsDefined()) return ConfigProblem::kLineNone;
    const int line = node.Mark().line;  // 0-based; -1 for nodes built in memory
    return line >= 0 ? line + 1 : ConfigProblem::kLineNone;
  }
  // Whether `inner` is `outer` or a key inside it.
  static bool within(std::string_view inner, std::string_view outer) {
    if (!inner.starts_with(outer)) return false;
    return outer.empty() || inner.size() == outer.size() || inner[outer.size()] == '.' ||
           inner[outer.size()] == '[';
  }
  bool overridden(std::string_view key) const {
    return std::any_of(overridden_.begin(), overridden_.end(),
                       [key](const std::string& path) { return within(key, path); });
  }
  bool holds_override(std::string_view key) const {
    return std::any_of(overridden_.begin(), overridden_.end(),
                       [key](const std::string& path) { return within(path, key); });
  }

  std::vector<std::string> overridden_;
  std::vector<ConfigProblem> problems_;
};

// One YAML map of the schema. The constructor reports unknown and duplicate keys; the readers
// then parse values by name, report bad ones at their key's line, and leave the target
// unchanged when the key is absent or its value is bad, so defaults survive.
class Section {
 public:
  Section(Checker& checker, const YAML::Node& node, std::string key, Names allowed);

  Checker& checker() const { return *checker_; }
  const std::string& key() const { return key_; }
  std::string key(std::string_view name) const { return join_key(key_, name); }
  // False when the node is neither a map nor empty (already reported).
  bool usable() const { return usable_; }
  bool has(std::string_view name) const { return find(name) != nullptr; }
  YAML::Node value(std::string_view name) const;
  Section section(std::string_view name, Names allowed) const {
    return Section(*checker_, value(name), key(name), allowed);
  }

  // At the key's line, or at the section's own line when the key is absent.
  void report(std::string_view name, std::string message) const;
  // A key that `cause` requires: at its own line when present, else where `cause` was set.
  void report_required(std::string_view name, std::string_view cause, std::string message) const;
  // The value's text. Null when the key is absent, and (after reporting) when its value is
  // empty or not a single value.
  const std::string* scalar(std::string_view name) const;

  void size(std::string_view name, std::uint64_t min, std::uint64_t max, std::uint64_t& out) const;
  void duration(std::string_view name, Millis min, Millis max, Millis& out) const;
  template <class T>
  void number(std::string_view name, std::uint64_t min, std::uint64_t max, T& out) const;
  template <class E, std::size_t N>
  void choice(std::string_view name, const Choice<E> (&choices)[N], E& out) const;
  void text(std::string_view name, std::string& out) const;
  void address(std::string_view name, HostPort& out) const;

 private:
  struct Entry {
    std::string name;
    YAML::Node key;
    YAML::Node value;
  };
  const Entry* find(std::string_view name) const;

  Checker* checker_;
  YAML::Node node_;
  std::string key_;
  bool usable_ = true;
  std::vector<Entry> entries_;  // known keys, first occurrence each
};

template <class T>
void Section::number(std::string_view name, std::uint64_t min, std::uint64_t max, T& out) const {
  const std::string* text = scalar(name);
  if (text == nullptr) return;
  const std::optional<std::uint64_t> value = parse_uint(*text);
  if (!value) return report(name, "invalid number " + single_quoted(*text));
  if (*value < min) return report(name, "must be at least " + std::to_string(min));
  if (*value > max) return report(name, "must be at most " + std::to_string(max));
  out = static_cast<T>(*value);
}

template <class E, std::size_t N>
void Section::choice(std::string_view name, const Choice<E> (&choices)[N], E& out) const {
  const std::string* text = scalar(name);
  if (text == nullptr) return;
  std::string listing;
  for (std::size_t i = 0; i < N; ++i) {
    if (iequals(choices[i].name, *text)) {
      out = choices[i].value;
      return;
    }
    const bool alias = std::any_of(choices, choices + i,
                                   [&](const Choice<E>& c) { return c.value == choices[i].value; });
    if (!alias) listing += (listing.empty() ? "" : " | ") + std::string(choices[i].name);
  }
  report(name, "invalid value " + single_quoted(*text) + " (expected " + listing + ")");
}

}  // namespace sluice::config_yaml
