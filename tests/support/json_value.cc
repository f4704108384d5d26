// A small strict JSON reader for tests: log lines, Prometheus API answers, the Grafana dashboard.
#include "tests/support/json_value.h"

#include <cstdint>
#include <cstdlib>

namespace sluice::test {
namespace {

constexpr int kMaxDepth = 200;

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  std::optional<JsonValue> document(std::string* error) {
    std::optional<JsonValue> value = parse_value(0);
    if (value) {
      skip_space();
      if (pos_ != text_.size()) {
        fail("unexpected text after the value");
        value.reset();
      }
    }
    if (!value && error != nullptr) {
      *error = "at byte " + std::to_string(error_pos_) + ": " + error_;
    }
    return value;
  }

 private:
  std::nullopt_t fail(const std::string& why) {
    if (error_.empty()) {
      error_ = why;
      error_pos_ = pos_;
    }
    return std::nullopt;
  }

  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  bool literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  std::optional<JsonValue> parse_value(int depth) {
    if (depth > kMaxDepth) return fail("nested too deeply");
    skip_space();
    if (pos_ >= text_.size()) return fail("unexpected end of input");
    const char c = text_[pos_];
    if (c == '{') return parse_object(depth);
    if (c == '[') return parse_array(depth);
    if (c == '"') {
      auto s = parse_string();
      if (!s) return std::nullopt;
      return JsonValue::string(std::move(*s));
    }
    if (c == '-' || (c >= '0' && c <= '9')) return parse_number();
    if (literal("true")) return JsonValue::boolean(true);
    if (literal("false")) return JsonValue::boolean(false);
    if (literal("null")) return JsonValue::null();
    return fail(std::string("unexpected character '") + c + "'");
  }

  std::optional<JsonValue> parse_object(int depth) {
    ++pos_;  // '{'
    std::vector<std::string> keys;
    std::vector<JsonValue> values;
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == '}') {
      ++pos_;
      return JsonValue::object(std::move(keys), std::move(values));
    }
    while (true) {
      skip_space();
      if (pos_ >= text_.size() || text_[pos_] != '"') return fail("expected a member name");
      auto key = parse_string();
      if (!key) return std::nullopt;
      skip_space();
      if (pos_ >= text_.size() || text_[pos_] != ':') return fail("expected ':'");
      ++pos_;
      auto value = parse_value(depth + 1);
      if (!value) return std::nullopt;
      keys.push_back(std::move(*key));
      values.push_back(std::move(*value));
      skip_space();
      if (pos_ >= text_.size()) return fail("unterminated object");
      if (text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (text_[pos_] == '}') {
        ++pos_;
        return JsonValue::object(std::move(keys), std::move(values));
      }
      return fail("expected ',' or '}'");
    }
  }

  std::optional<JsonValue> parse_array(int depth) {
    ++pos_;  // '['
    std::vector<JsonValue> items;
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == ']') {
      ++pos_;
      return JsonValue::array(std::move(items));
    }
    while (true) {
      auto value = parse_value(depth + 1);
      if (!value) return std::nullopt;
      items.push_back(std::move(*value));
      skip_space();
      if (pos_ >= text_.size()) return fail("unterminated array");
      if (text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (text_[pos_] == ']') {
        ++pos_;
        return JsonValue::array(std::move(items));
      }
      return fail("expected ',' or ']'");
    }
  }

  static void put_utf8(std::string* out, std::uint32_t cp) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  std::optional<std::uint32_t> hex4() {
    if (pos_ + 4 > text_.size()) return fail("short \\u escape");
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = text_[pos_++];
      v <<= 4;
      if (h >= '0' && h <= '9') {
        v |= static_cast<std::uint32_t>(h - '0');
      } else if (h >= 'a' && h <= 'f') {
        v |= static_cast<std::uint32_t>(h - 'a' + 10);
      } else if (h >= 'A' && h <= 'F') {
        v |= static_cast<std::uint32_t>(h - 'A' + 10);
      } else {
        return fail("bad hex digit in \\u escape");
      }
    }
    return v;
  }

  std::optional<std::string> parse_string() {
    ++pos_;  // '"'
    std::string out;
    while (true) {
      if (pos_ >= text_.size()) return fail("unterminated string");
      const char c = text_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) return fail("unescaped control character");
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (pos_ >= text_.size()) return fail("unterminated escape");
      const char e = text_[pos_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out.push_back(e);
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'u': {
          auto cp = hex4();
          if (!cp) return std::nullopt;
          if (*cp >= 0xD800 && *cp < 0xDC00) {
            if (!literal("\\u")) return fail("lone high surrogate");
            auto low = hex4();
            if (!low) return std::nullopt;
            if (*low < 0xDC00 || *low >= 0xE000) return fail("bad low surrogate");
            *cp = 0x10000 + ((*cp - 0xD800) << 10) + (*low - 0xDC00);
          } else if (*cp >= 0xDC00 && *cp < 0xE000) {
            return fail("lone low surrogate");
          }
          put_utf8(&out, *cp);
          break;
        }
        default:
          return fail(std::string("bad escape \\") + e);
      }
    }
  }

  std::optional<JsonValue> parse_number() {
    const std::size_t start = pos_;
    auto digits = [this] {
      const std::size_t from = pos_;
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
      return pos_ - from;
    };
    if (text_[pos_] == '-') ++pos_;
    if (pos_ < text_.size() && text_[pos_] == '0') {
      ++pos_;
    } else if (digits() == 0) {
      return fail("bad number");
    }
    if (pos_ < text_.size() && text_[pos_] == '.') {
      ++pos_;
      if (digits() == 0) return fail("bad fraction");
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
      if (digits() == 0) return fail("bad exponent");
    }
    const std::string token(text_.substr(start, pos_ - start));
    return JsonValue::number(std::strtod(token.c_str(), nullptr));
  }

  std::string_view text_;
  std::size_t pos_ = 0;
  std::string error_;
  std::size_t error_pos_ = 0;
};

void collect(const JsonValue& v, std::string_view key, std::vector<const JsonValue*>* out) {
  if (v.is_object()) {
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (v.keys()[i] == key) out->push_back(&v.items()[i]);
      collect(v.items()[i], key, out);
    }
  } else if (v.is_array()) {
    for (const JsonValue& item : v.items()) collect(item, key, out);
  }
}

}  // namespace

const JsonValue* JsonValue::get(std::string_view key) const {
  if (type_ != Type::kObject) return nullptr;
  for (std::size_t i = 0; i < keys_.size(); ++i) {
    if (keys_[i] == key) return &items_[i];
  }
  return nullptr;
}

std::string JsonValue::string_or(std::string_view key, std::string fallback) const {
  const JsonValue* v = get(key);
  return v != nullptr && v->is_string() ? v->as_string() : fallback;
}

JsonValue JsonValue::boolean(bool b) {
  JsonValue v;
  v.type_ = Type::kBool;
  v.bool_ = b;
  return v;
}

JsonValue JsonValue::number(double n) {
  JsonValue v;
  v.type_ = Type::kNumber;
  v.number_ = n;
  return v;
}

JsonValue JsonValue::string(std::string s) {
  JsonValue v;
  v.type_ = Type::kString;
  v.string_ = std::move(s);
  return v;
}

JsonValue JsonValue::array(std::vector<JsonValue> items) {
  JsonValue v;
  v.type_ = Type::kArray;
  v.items_ = std::move(items);
  return v;
}

JsonValue JsonValue::object(std::vector<std::string> keys, std::vector<JsonValue> items) {
  JsonValue v;
  v.type_ = Type::kObject;
  v.keys_ = std::move(keys);
  v.items_ = std::move(items);
  return v;
}

std::optional<JsonValue> parse_json(std::string_view text, std::string* error) {
  return Parser(text).document(error);
}

std::vector<const JsonValue*> find_members(const JsonValue& root, std::string_view key) {
  std::vector<const JsonValue*> out;
  collect(root, key, &out);
  return out;
}

}  // namespace sluice::test
