// Loads the config: reads the file, parses one YAML document, applies --set, runs the schema.
#include "common/config_loader.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "common/config_schema.h"
#include "common/config_section.h"

namespace sluice {
namespace {

using config_yaml::Checker;
using config_yaml::contains;
using config_yaml::index_key;
using config_yaml::join_key;
using config_yaml::parse_uint;

// ---- --set overrides ----

// Keys whose value is always text, so an override never reads them as a YAML list or map.
constexpr std::string_view kTextKeys[] = {"message", "name", "path", "username", "password_file"};

std::string_view trim(std::string_view text) {
  const std::size_t begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string_view::npos) return {};
  return text.substr(begin, text.find_last_not_of(" \t\r\n") - begin + 1);
}

// "listeners.0.x" or "listeners[0].x" -> {"listeners", "0", "x"}; nullopt when malformed.
std::optional<std::vector<std::string>> split_key_path(std::string_view path) {
  std::string dotted;
  for (std::size_t i = 0; i < path.size(); ++i) {
    if (path[i] == ']') return std::nullopt;
    if (path[i] != '[') {
      dotted += path[i];
      continue;
    }
    const std::size_t close = path.find(']', i);
    if (close == std::string_view::npos || !parse_uint(path.substr(i + 1, close - i - 1))) {
      return std::nullopt;
    }
    if (close + 1 < path.size() && path[close + 1] != '.' && path[close + 1] != '[') {
      return std::nullopt;
    }
    dotted += '.';
    dotted += path.substr(i + 1, close - i - 1);
    i = close;
  }
  std::vector<std::string> parts;
  std::size_t begin = 0;
  for (std::size_t dot = dotted.find('.'); begin <= dotted.size(); dot = dotted.find('.', begin)) {
    if (dot == std::string::npos) dot = dotted.size();
    if (dot == begin) return std::nullopt;  // empty part
    parts.push_back(dotted.substr(begin, dot - begin));
    begin = dot + 1;
  }
  return parts;
}

// The override's value as a node: see load_config_text for the rules.
YAML::Node override_value(std::string_view raw, bool text_key) {
  const std::string text(trim(raw));
  const char first = text.empty() ? '\0' : text.front();
  const bool quoted_text = first == '"' || first == '\'';
  const bool flow = !text_key && (first == '[' || first == '{');
  if (quoted_text || flow) {
    try {
      YAML::Node parsed = YAML::Load(text);
      if (quoted_text ? parsed.IsScalar() : (parsed.IsSequence() || parsed.IsMap())) return parsed;
    } catch (const YAML::Exception&) {
      // Not YAML after all: the text as written is the value.
    }
  }
  return YAML::Node(text);
}

// One step along an override's path: moves `cursor` to the child `part` (creating a missing map
// key), or sets that child to `*value` when given. Extends `key`; false after reporting.
bool step(YAML::Node& cursor, const std::string& part, const YAML::Node* value, std::string& key,
          Checker& checker) {
  const std::optional<std::uint64_t> index = parse_uint(part);
  const bool empty = !cursor.IsDefined() || cursor.IsNull();
  if (cursor.IsSequence() || (empty && index)) {
    if (!index) {
      checker.report_override(key, "is a list: index it with a number, e.g. " + key + ".0");
      return false;
    }
    const std::size_t size = empty ? 0 : cursor.size();
    const std::string parent = key;
    key = index_key(key, part);
    if (*index >= size) {
      checker.report_override(key,
                              "no such element (" + parent + " has " + std::to_string(size) + ")");
      return false;
    }
    if (value != nullptr)
      cursor[*index] = *value;
    else
      cursor.reset(cursor[*index]);
    return true;
  }
  if (!empty && !cursor.IsMap()) {
    checker.report_override(key, "is a single value, so " + join_key(key, part) + " cannot be set");
    return false;
  }
  key = join_key(key, part);
  if (value != nullptr)
    cursor[part] = *value;
  else
    cursor.reset(cursor[part]);
  return true;
}

void apply_override(YAML::Node root, std::string_view text, Checker& checker) {
  const std::size_t equals = text.find('=');
  const std::string raw_key(trim(text.substr(0, equals)));
  if (equals == std::string_view::npos) {
    return checker.report_override(raw_key, "expected key.path=value");
  }
  const std::optional<std::vector<std::string>> parts = split_key_path(raw_key);
  if (!parts) return checker.report_override(raw_key, "malformed key path");
  const YAML::Node value =
      override_value(text.substr(equals + 1), contains(kTextKeys, parts->back()));
  YAML::Node cursor = root;  // a handle: reset() moves it without touching the tree
  std::string key;
  for (std::size_t i = 0; i < parts->size(); ++i) {
    const bool last = i + 1 == parts->size();
    if (!step(cursor, (*parts)[i], last ? &value : nullptr, key, checker)) return;
  }
  checker.add_overridden(std::move(key));
}

// Notes where each YAML document starts; ignores everything else.
class DocumentStarts : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> marks;
  void OnDocumentStart(const YAML::Mark& mark) override { marks.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

int problem_line(const YAML::Mark& mark) {
  return mark.line >= 0 ? mark.line + 1 : ConfigProblem::kLineNone;
}

// YAML::Load() reads the first document and silently ignores the rest, so a second one is
// refused here. yaml-cpp 0.7 also reads a stray ',' as an empty document that consumes
// nothing (its LoadAll() then loops, allocating, forever: yaml-cpp issue #1040), so at most
// two documents are read, and a second one starting where the first did is that bug.
// Throws YAML::ParserException on syntax errors.
std::optional<ConfigProblem> check_single_document(const std::string& text) {
  std::istringstream stream(text);
  YAML::Parser parser(stream);
  DocumentStarts starts;
  for (int i = 0; i < 2 && parser.HandleNextDocument(starts); ++i) {
  }
  if (starts.marks.size() < 2) return std::nullopt;
  const YAML::Mark& second = starts.marks[1];
  if (second.pos == starts.marks[0].pos) {
    const std::size_t at = static_cast<std::size_t>(std::max(second.pos, 0));
    const std::string token = at < text.size() ? std::string(1, text[at]) : "end of input";
    return ConfigProblem{"", problem_line(second), "YAML syntax error: unexpected '" + token + "'"};
  }
  return ConfigProblem{"", problem_line(second), "only one YAML document is allowed"};
}

LoadedConfig failed(std::string key, int line, std::string message) {
  LoadedConfig loaded;
  loaded.problems.push_back({std::move(key), line, std::move(message)});
  return loaded;
}

}  // namespace

std::string ConfigProblem::text() const {
  std::string where;
  if (line == kLineOverride) where = "--set";
  if (line > 0) where = "line " + std::to_string(line);
  if (key.empty()) return (where.empty() ? "" : where + ": ") + message;
  return key + (where.empty() ? "" : " (" + where + ")") + ": " + message;
}

LoadedConfig load_config_text(std::string_view yaml, const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    const std::string text(yaml);
    if (std::optional<ConfigProblem> problem = check_single_document(text)) {
      return failed(std::move(problem->key), problem->line, std::move(problem->message));
    }
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    return failed("", problem_line(e.mark), "YAML syntax error: " + e.msg);
  } catch (const std::exception& e) {
    return failed("", ConfigProblem::kLineNone, std::string("cannot parse YAML: ") + e.what());
  }
  LoadedConfig loaded;
  Checker checker;
  std::string internal_error;
  try {
    // An empty document has no node to hang overrides on; give it an empty map.
    if (root.IsNull()) root.reset(YAML::Node(YAML::NodeType::Map));
    for (const std::string& text : overrides) apply_override(root, text, checker);
    loaded.config = config_yaml::read_config(root, checker);
  } catch (const std::exception& e) {
    // yaml-cpp throws on node misuse; the API promises results, so report it instead.
    internal_error = std::string("internal error while loading: ") + e.what();
  }
  loaded.problems = checker.take();
  if (!internal_error.empty()) {
    loaded.problems.push_back({"", ConfigProblem::kLineNone, std::move(internal_error)});
  }
  return loaded;
}

LoadedConfig load_config_file(const std::string& path, const std::vector<std::string>& overrides) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) {
    return failed("", ConfigProblem::kLineNone, "cannot read " + path + ": is a directory");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return failed("", ConfigProblem::kLineNone,
                  "cannot read " + path + ": " + std::strerror(errno));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return failed("", ConfigProblem::kLineNone, "cannot read " + path);
  return load_config_text(text.str(), overrides);
}

}  // namespace sluice
