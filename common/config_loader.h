// Loads the YAML configuration (file or text, plus --set overrides) into a Config,
// collecting every problem with its dotted key path and line.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"

namespace sluice {

struct ConfigProblem {
  static constexpr int kLineOverride = 0;  // the problem comes from a --set override
  static constexpr int kLineNone = -1;     // tied to no line: unreadable file, missing top key

  std::string key;       // "listeners[0].max_allowed_packet"; empty for YAML syntax errors
  int line = kLineNone;  // 1-based line in the file, or one of the constants above
  std::string message;

  // "listeners[0].max_allowed_packet (line 12): invalid size 'abc'",
  // "log.level (--set): ...", "listeners: ..." (no line), "line 3: YAML syntax error: ...".
  std::string text() const;
};

struct LoadedConfig {
  Config config;  // valid only when ok(); otherwise defaults plus whatever could be read
  std::vector<ConfigProblem> problems;
  bool ok() const { return problems.empty(); }
};

// Parses `yaml`, applies each override ("key.path=value", see below) to the parsed tree, then
// validates the result, so overrides are checked exactly like the file. Never throws.
//
// Override keys: dotted names, with list indexes either as a part or in brackets
// (`listeners.0.max_allowed_packet`, `listeners[0].upstreams`). An index must name an
// existing list element; a missing map key is created (so a misspelt one is then reported as
// unknown). The value is a plain string, except that one starting with `[` or `{` is read as
// YAML flow (`[127.0.0.1:3307]`, `{code: 1}`) and one starting with a quote is unquoted
// (`"08S01"`), when it parses as such. Text keys (`message`, `name`, `path`, `username`,
// `password_file`) never take a list or map, so `errors.read_timeout.message={timeout} is
// too slow` keeps its text.
LoadedConfig load_config_text(std::string_view yaml,
                              const std::vector<std::string>& overrides = {});

// Reads the file at `path`, then as load_config_text. An unreadable file is a problem.
LoadedConfig load_config_file(const std::string& path,
                              const std::vector<std::string>& overrides = {});

}  // namespace sluice
