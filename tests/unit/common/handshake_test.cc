// Tests the connection-phase parsers on packets captured from MariaDB 10.11 and its CLI.
#include "common/handshake.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <string_view>
#include <vector>

#include "common/wire.h"

namespace sluice {
namespace {

std::vector<std::uint8_t> hex(std::string_view text) {
  std::vector<std::uint8_t> out;
  auto nibble = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  for (std::size_t i = 0; i + 1 < text.size(); i += 2) {
    out.push_back(static_cast<std::uint8_t>(nibble(text[i]) << 4 | nibble(text[i + 1])));
  }
  return out;
}

// MariaDB 10.11.19 greeting with TLS configured (CLIENT_SSL set).
constexpr std::string_view kGreeting =
    "0a352e352e352d31302e31312e31392d4d6172696144422d302b646562313275310003000000277e6769"
    "5a66702200feff080200ff81150000000000001d00000055657d66664e314a622e5d69006d7973716c5f"
    "6e61746976655f70617373776f726400";
// HandshakeResponse41 of the `mariadb` CLI (libmariadb 3.3.20): MariaDB extended
// caps, lenenc auth data, a database, a plugin and connection attributes.
constexpr std::string_view kCliHello =
    "8ca2bf000000100021000000000000000000000000000000000000001d000000726f6f74000074006d79"
    "73716c5f6e61746976655f70617373776f7264007e035f6f73054c696e75780c5f636c69656e745f6e61"
    "6d650a6c69626d617269616462045f70696404383131370f5f636c69656e745f76657273696f6e06332e"
    "332e3230095f706c6174666f726d067838365f36340c70726f6772616d5f6e616d65056d7973716c0c5f"
    "7365727665725f686f7374093132372e302e302e31";
// The same CLI with --ssl: the 32-byte SSLRequest.
constexpr std::string_view kCliSslRequest =
    "84aabf000000100021000000000000000000000000000000000000001d000000";
// A client setting CLIENT_MYSQL: the filler's last 4 bytes are not capabilities.
constexpr std::string_view kMysqlStyleHello =
    "89a22f0000000001210000000000000000000000000000000000000000000000726f6f74000074006d79"
    "73716c5f6e61746976655f70617373776f726400";
// Real ERR (table missing) and the server's "Unknown command" ERR.
constexpr std::string_view kErr =
    "ff7a042334325330325461626c652027742e6e6f70652720646f65736e2774206578697374";

TEST_CASE("server greeting of MariaDB 10.11") {
  const auto bytes = hex(kGreeting);
  const auto g = parse_server_greeting(bytes);
  REQUIRE(g);
  CHECK(g->protocol == 10);
  CHECK(g->version == "5.5.5-10.11.19-MariaDB-0+deb12u1");
  CHECK(g->connection_id == 3);
  CHECK((g->capabilities & wire::kClientMysql) == 0);
  CHECK((g->capabilities & wire::kClientSsl) != 0);
  CHECK((g->capabilities & wire::kClientDeprecateEof) != 0);
  CHECK((g->capabilities & wire::kMariaDbClientCacheMetadata) != 0);
  CHECK((g->capabilities >> 32) == 0x1d);
  CHECK(g->charset == 8);
  CHECK(g->status == 2);
  CHECK(g->auth_plugin == "mysql_native_password");
}

TEST_CASE("greeting: MySQL servers keep the reserved bytes out of the capabilities") {
  auto bytes = hex(kGreeting);
  bytes[47] |= 0x01;  // set CLIENT_MYSQL in the lower capability bytes
  const auto g = parse_server_greeting(bytes);
  REQUIRE(g);
  CHECK((g->capabilities >> 32) == 0);
}

TEST_CASE("greeting: a plugin name without its NUL is accepted") {
  auto bytes = hex(kGreeting);
  bytes.pop_back();
  const auto g = parse_server_greeting(bytes);
  REQUIRE(g);
  CHECK(g->auth_plugin == "mysql_native_password");
}

TEST_CASE("greeting: other protocols, ERR and truncations give nullopt, never a crash") {
  CHECK_FALSE(parse_server_greeting({}));
  const auto err = hex(kErr);
  CHECK_FALSE(parse_server_greeting(err));
  auto v9 = hex(kGreeting);
  v9[0] = 9;
  CHECK_FALSE(parse_server_greeting(v9));
  const auto bytes = hex(kGreeting);
  const std::size_t mandatory = 1 + 33 + 4 + 9 + 2;  // up to the lower capabilities
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    const auto g = parse_server_greeting(std::span(bytes).first(n));
    // A 4.0-style greeting may end right after the capabilities, and the plugin
    // name may be cut short; nothing else may be missing.
    CHECK(g.has_value() == (n == mandatory || n >= bytes.size() - 22));
  }
}

TEST_CASE("client hello of the mariadb CLI") {
  const auto bytes = hex(kCliHello);
  const auto h = parse_client_hello(bytes);
  REQUIRE(h);
  CHECK_FALSE(h->ssl_request);
  CHECK((h->capabilities & wire::kClientMysql) == 0);
  CHECK((h->capabilities >> 32) == 0x1d);
  CHECK((h->capabilities & wire::kClientConnectAttrs) != 0);
  CHECK(h->max_packet == 0x100000);
  CHECK(h->charset == 0x21);
  CHECK(h->user == "root");
  CHECK(h->database == "t");
  CHECK(h->auth_plugin == "mysql_native_password");
}

TEST_CASE("client hello: SSLRequest") {
  const auto bytes = hex(kCliSslRequest);
  const auto h = parse_client_hello(bytes);
  REQUIRE(h);
  CHECK(h->ssl_request);
  CHECK((h->capabilities & wire::kClientSsl) != 0);
  CHECK((h->capabilities >> 32) == 0x1d);
  CHECK(h->user.empty());
  auto no_ssl = bytes;
  no_ssl[1] &= ~0x08;  // clear CLIENT_SSL: 32 bytes are then a truncated response
  CHECK_FALSE(parse_client_hello(no_ssl));
}

TEST_CASE("client hello: CLIENT_MYSQL clients carry no extended capabilities") {
  auto bytes = hex(kMysqlStyleHello);
  bytes[28] = 0xFF;  // garbage in the filler must not leak into the caps
  const auto h = parse_client_hello(bytes);
  REQUIRE(h);
  CHECK((h->capabilities >> 32) == 0);
  CHECK(h->user == "root");
  CHECK(h->database == "t");
  CHECK(h->auth_plugin == "mysql_native_password");
}

// Builds a HandshakeResponse41 with the given caps after the fixed 32 bytes.
std::vector<std::uint8_t> hello(std::uint32_t caps, std::string_view tail) {
  std::vector<std::uint8_t> out(32, 0);
  out[0] = static_cast<std::uint8_t>(caps);
  out[1] = static_cast<std::uint8_t>(caps >> 8);
  out[2] = static_cast<std::uint8_t>(caps >> 16);
  out[3] = static_cast<std::uint8_t>(caps >> 24);
  out.insert(out.end(), tail.begin(), tail.end());
  return out;
}

TEST_CASE("client hello: the three auth-response encodings") {
  using namespace std::string_view_literals;
  const std::uint32_t base = wire::kClientProtocol41 | wire::kClientConnectWithDb;
  const auto plain = hello(base, "bob\0secret\0db\0"sv);
  const auto secure = hello(base | wire::kClientSecureConnection, "bob\0\x03\0\0\0db\0"sv);
  const auto lenenc =
      hello(base | wire::kClientSecureConnection | wire::kClientPluginAuthLenencData,
            "bob\0\xfc\x02\0xydb"sv);
  for (const auto* bytes : {&plain, &secure, &lenenc}) {
    const auto h = parse_client_hello(*bytes);
    REQUIRE(h);
    CHECK(h->user == "bob");
    CHECK(h->database == "db");
    CHECK(h->auth_plugin.empty());
  }
}

TEST_CASE("client hello: malformed and pre-4.1 packets give nullopt") {
  using namespace std::string_view_literals;
  CHECK_FALSE(parse_client_hello({}));
  CHECK_FALSE(parse_client_hello(hello(0, "bob\0\0"sv)));  // no CLIENT_PROTOCOL_41
  const std::uint32_t lenenc =
      wire::kClientProtocol41 | wire::kClientSecureConnection | wire::kClientPluginAuthLenencData;
  CHECK_FALSE(parse_client_hello(hello(lenenc, "bob\0\x09xy"sv)));           // auth past the end
  CHECK_FALSE(parse_client_hello(hello(lenenc, "bob\0\xff"sv)));             // not a lenenc
  CHECK_FALSE(parse_client_hello(hello(wire::kClientProtocol41, "bob"sv)));  // user unterminated
  const auto bytes = hex(kCliHello);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    (void)parse_client_hello(std::span(bytes).first(n));  // must not crash or read past
  }
}

TEST_CASE("auth replies are classified by their first byte") {
  const std::uint8_t ok[] = {0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00};
  const std::uint8_t err[] = {0xFF, 0x15, 0x04};
  const std::uint8_t sw[] = {0xFE, 'a', 0};
  const std::uint8_t more[] = {0x01, 0x04};
  const std::uint8_t other[] = {0x42};
  CHECK(classify_auth_reply(ok) == AuthReply::kOk);
  CHECK(classify_auth_reply(err) == AuthReply::kErr);
  CHECK(classify_auth_reply(sw) == AuthReply::kSwitch);
  CHECK(classify_auth_reply(more) == AuthReply::kMoreData);
  CHECK(classify_auth_reply(other) == AuthReply::kUnknown);
  CHECK(classify_auth_reply({}) == AuthReply::kUnknown);
}

TEST_CASE("ERR packets with and without SQLSTATE") {
  const auto bytes = hex(kErr);
  const auto e = parse_err_packet(bytes);
  REQUIRE(e);
  CHECK(e->code == 1146);
  CHECK(e->sqlstate == "42S02");
  CHECK(e->message == "Table 't.nope' doesn't exist");

  // Sent before the client's capabilities are known: no '#' marker.
  const std::uint8_t host[] = {0xFF, 0x6A, 0x04, 'H', 'o', 's', 't'};
  const auto h = parse_err_packet(host);
  REQUIRE(h);
  CHECK(h->code == 1130);
  CHECK(h->sqlstate.empty());
  CHECK(h->message == "Host");

  const std::uint8_t short_state[] = {0xFF, 0x01, 0x00, '#', '4', '2'};
  const auto s = parse_err_packet(short_state);
  REQUIRE(s);
  CHECK(s->sqlstate.empty());
  CHECK(s->message == "#42");

  const std::uint8_t truncated[] = {0xFF, 0x01};
  CHECK_FALSE(parse_err_packet(truncated));
  const std::uint8_t ok[] = {0x00, 0x00, 0x00};
  CHECK_FALSE(parse_err_packet(ok));
  CHECK_FALSE(parse_err_packet({}));
}

}  // namespace
}  // namespace sluice
