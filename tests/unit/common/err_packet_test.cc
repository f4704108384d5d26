// ERR packet encoding and message placeholders.
#include <doctest/doctest.h>

#include "common/err_packet.h"

namespace sluice {
namespace {

TEST_CASE("err packet: header, code, SQLSTATE marker and message on the wire") {
  const ErrorSpec spec{1153, "08S01", "Got a packet bigger than 'max_allowed_packet' bytes"};
  const auto p = encode_err_packet(spec, 3, {});
  const std::size_t payload = 1 + 2 + 1 + 5 + spec.message.size();
  REQUIRE(p.size() == 4 + payload);
  CHECK(p[0] == (payload & 0xFF));
  CHECK(p[1] == 0);
  CHECK(p[2] == 0);
  CHECK(p[3] == 3);
  CHECK(p[4] == 0xFF);
  CHECK(p[5] == (1153 & 0xFF));
  CHECK(p[6] == (1153 >> 8));
  CHECK(p[7] == '#');
  CHECK(std::string(p.begin() + 8, p.begin() + 13) == "08S01");
  CHECK(std::string(p.begin() + 13, p.end()) == spec.message);
}

TEST_CASE("err packet: placeholders expand - unknown braces stay as written") {
  ErrContext ctx;
  ctx.size = 2048;
  ctx.limit = 1024;
  ctx.timeout = Millis{30000};
  ctx.listener = "main";
  CHECK(expand_error_message("{size} > {limit} on {listener} after {timeout} {other}", ctx) ==
        "2048 > 1024 on main after 30s {other}");
  CHECK(expand_error_message("no placeholders", ctx) == "no placeholders");
  CHECK(expand_error_message("open { only", ctx) == "open { only");
}

TEST_CASE("err packet: long messages are capped at 512 bytes") {
  const ErrorSpec spec{1041, "HY000", std::string(2000, 'm')};
  const auto p = encode_err_packet(spec, 0, {});
  CHECK(p.size() == 4 + 9 + 512);
}

}  // namespace
}  // namespace sluice
