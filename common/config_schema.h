// The config schema: which keys exist, their bounds, and the checks across keys; fills a Config.
#pragma once

#include <yaml-cpp/yaml.h>

#include "common/config.h"
#include "common/config_section.h"

namespace sluice::config_yaml {

// Reads the whole tree into a Config, reporting every problem to `checker`; keys that are
// absent or bad keep their defaults.
Config read_config(const YAML::Node& root, Checker& checker);

}  // namespace sluice::config_yaml
