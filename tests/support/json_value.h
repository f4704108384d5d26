// A small strict JSON reader for tests: log lines, Prometheus API answers, the Grafana dashboard.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::test {

// One JSON value. Objects keep their members in document order (duplicate
// keys are kept too; get() returns the first).
class JsonValue {
 public:
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_number() const { return type_ == Type::kNumber; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_object() const { return type_ == Type::kObject; }

  bool as_bool() const { return bool_; }
  double as_number() const { return number_; }
  const std::string& as_string() const { return string_; }
  // Array elements, or object member values (in order).
  const std::vector<JsonValue>& items() const { return items_; }
  // Object member names, parallel to items().
  const std::vector<std::string>& keys() const { return keys_; }
  std::size_t size() const { return items_.size(); }

  // The member `key` of an object; nullptr when absent or not an object.
  const JsonValue* get(std::string_view key) const;
  // get(key) as a string, or `fallback` when absent or not a string.
  std::string string_or(std::string_view key, std::string fallback = "") const;

  static JsonValue null() { return JsonValue(); }
  static JsonValue boolean(bool b);
  static JsonValue number(double n);
  static JsonValue string(std::string s);
  static JsonValue array(std::vector<JsonValue> items);
  static JsonValue object(std::vector<std::string> keys, std::vector<JsonValue> items);

 private:
  Type type_ = Type::kNull;
  bool bool_ = false;
  double number_ = 0;
  std::string string_;
  std::vector<std::string> keys_;
  std::vector<JsonValue> items_;
};

// Parses exactly one JSON document (RFC 8259: no comments, no trailing commas,
// no NaN, control characters escaped in strings, nothing after the value but
// whitespace). nullopt on any error, with the byte offset and reason in *error.
std::optional<JsonValue> parse_json(std::string_view text, std::string* error = nullptr);

// Every value in `root` (itself included) that is an object member named `key`,
// depth first in document order. E.g. all "expr" strings of a dashboard.
std::vector<const JsonValue*> find_members(const JsonValue& root, std::string_view key);

}  // namespace sluice::test
