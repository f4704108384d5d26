// Parsers for the connection-phase packets: server greeting, client hello, auth replies, ERR.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace sluice {

// Every parser here reads untrusted bytes: it never throws, never reads past the
// span and answers nullopt (or kUnknown) when the bytes do not fit the format.

// Protocol::HandshakeV10, the first packet of a connection.
struct ServerGreeting {
  std::uint8_t protocol = 0;  // always 10 when parsed
  std::string version;        // "5.5.5-10.11.19-MariaDB-..." for MariaDB
  std::uint32_t connection_id = 0;
  // Low 32 bits: the standard CLIENT_* flags. Upper 32: MariaDB's extended
  // capabilities, present only when the server does not set CLIENT_MYSQL (bit 0).
  std::uint64_t capabilities = 0;
  std::uint8_t charset = 0;
  std::uint16_t status = 0;
  std::string auth_plugin;  // empty without CLIENT_PLUGIN_AUTH
};
// Parses a greeting payload; nullopt for another protocol version (an ERR sent
// instead of a greeting included) or a truncated packet.
std::optional<ServerGreeting> parse_server_greeting(std::span<const std::uint8_t> payload);

// Protocol::HandshakeResponse41 or the 32-byte SSLRequest that precedes TLS.
struct ClientHello {
  bool ssl_request = false;  // the SSLRequest: no user, TLS starts next
  // With MariaDB's extended capabilities (last 4 filler bytes) in the upper 32
  // bits when the client does not set CLIENT_MYSQL.
  std::uint64_t capabilities = 0;
  std::uint32_t max_packet = 0;
  std::uint8_t charset = 0;
  std::string user;
  std::string database;     // empty without CLIENT_CONNECT_WITH_DB
  std::string auth_plugin;  // empty without CLIENT_PLUGIN_AUTH
};
// Parses the client's first (or, after TLS, second) packet. Pre-4.1 clients
// (no CLIENT_PROTOCOL_41) and malformed packets give nullopt. Connection
// attributes are not decoded.
std::optional<ClientHello> parse_client_hello(std::span<const std::uint8_t> payload);

// What a server packet means while authentication is in progress.
enum class AuthReply : std::uint8_t {
  kOk,        // 0x00: authenticated
  kErr,       // 0xFF: refused
  kSwitch,    // 0xFE: AuthSwitchRequest, the client answers with new auth data
  kMoreData,  // 0x01: plugin-specific extra data (the client may or may not answer)
  kUnknown,   // empty or any other first byte
};
AuthReply classify_auth_reply(std::span<const std::uint8_t> payload);

// An ERR packet. `sqlstate` is empty when no '#' marker follows the code (errors
// sent before the client announced CLIENT_PROTOCOL_41 carry none).
struct ErrPacket {
  std::uint16_t code = 0;
  std::string sqlstate;
  std::string message;
};
// nullopt unless the payload starts with 0xFF and holds the 2-byte code.
std::optional<ErrPacket> parse_err_packet(std::span<const std::uint8_t> payload);

}  // namespace sluice
