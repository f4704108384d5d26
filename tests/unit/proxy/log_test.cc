// append_json_string: every log line is valid JSON, whatever bytes a client sent.
#include "proxy/log.h"

#include <doctest/doctest.h>

#include <string>

namespace sluice {
namespace {

std::string json(std::string_view s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

TEST_CASE("json log strings escape quotes, backslashes and control characters") {
  CHECK(json("ev\"il\\") == R"("ev\"il\\")");
  CHECK(json("a\nb\rc\td") == R"("a\nb\rc\td")");
  CHECK(json(std::string("\x00\x1b", 2)) == R"("\u0000\u001b")");
}

TEST_CASE("json log strings keep well-formed UTF-8 and escape any other byte as Latin-1") {
  CHECK(json("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xac") ==
        "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xac\"");
  // A latin1 'é', stray continuation bytes, a lead byte cut short at the end.
  CHECK(json("caf\xe9") == R"("caf\u00e9")");
  CHECK(json("\xff\xfe\x80") == R"("\u00ff\u00fe\u0080")");
  CHECK(json("x\xe2\x82") == R"("x\u00e2\u0082")");
  // Overlong forms, a UTF-16 surrogate and a value past U+10FFFF are not UTF-8.
  CHECK(json("\xc0\xaf") == R"("\u00c0\u00af")");
  CHECK(json("\xe0\x80\xaf") == R"("\u00e0\u0080\u00af")");
  CHECK(json("\xed\xa0\x80") == R"("\u00ed\u00a0\u0080")");
  CHECK(json("\xf4\x90\x80\x80") == R"("\u00f4\u0090\u0080\u0080")");
}

}  // namespace
}  // namespace sluice
