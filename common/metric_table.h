// Every metric sluice exports, declared once: name, type, help, labels, and the label value sets.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace sluice {

enum class MetricType : std::uint8_t { kCounter, kGauge, kHistogram };

enum class MetricId : std::uint8_t {
  kBuildInfo,
  kConnectionsTotal,
  kConnectionsActive,
  kConnectionsRejected,
  kUpstreamConnectSeconds,
  kUpstreamConnectErrors,
  kPackets,
  kBytes,
  kPacketSize,
  kOversizedPackets,
  kTimeouts,
  kEintrRetries,
  kIoErrors,
  kSequenceErrors,
  kCommands,
  kCommandDuration,
  kTrackerLost,
  kTlsSessions,
  kCompressedSessions,
  kBufferedBytes,
  kMemoryLimitWaits,
  kMemoryLimitRefusals,
  kAllocationFailures,
  kConfigReloads,
  kCount
};

struct MetricDef {
  MetricId id;
  std::string_view name;
  MetricType type;
  std::string_view help;
  std::array<std::string_view, 3> labels;  // empty strings pad the array
};

// The table, indexed by MetricId.
std::span<const MetricDef> metric_table();
const MetricDef& metric_def(MetricId id);

// Label value sets. Each enum's values index the matching name array.
enum class Direction : std::uint8_t { kClientToServer, kServerToClient, kCount };
inline constexpr std::array<std::string_view, 2> kDirectionNames = {"client_to_server",
                                                                    "server_to_client"};

enum class TimeoutKind : std::uint8_t { kConnect, kHandshake, kRead, kWrite, kIdle, kCount };
inline constexpr std::array<std::string_view, 5> kTimeoutKindNames = {"connect", "handshake",
                                                                      "read", "write", "idle"};

enum class SysOp : std::uint8_t { kRead, kWrite, kAccept, kConnect, kCount };
inline constexpr std::array<std::string_view, 4> kSysOpNames = {"read", "write", "accept",
                                                                "connect"};

enum class RejectReason : std::uint8_t { kMaxConnections, kUpstreamUnavailable, kShutdown, kCount };
inline constexpr std::array<std::string_view, 3> kRejectReasonNames = {
    "max_connections", "upstream_unavailable", "shutdown"};

enum class OversizeAction : std::uint8_t { kClose, kReject, kCount };
inline constexpr std::array<std::string_view, 2> kOversizeActionNames = {"close", "reject"};

enum class TlsMode : std::uint8_t { kPassthrough, kTerminated, kCount };
inline constexpr std::array<std::string_view, 2> kTlsModeNames = {"passthrough", "terminated"};

// Histogram bucket upper bounds.
inline constexpr std::array<double, 14> kPacketSizeBuckets = {
    16,     64,      256,     1024,     4096,     16384,     65536,
    262144, 1048576, 4194304, 16777216, 67108864, 268435456, 1073741824};
inline constexpr std::array<double, 16> kDurationBuckets = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
inline constexpr std::array<double, 12> kConnectBuckets = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 1, 5};

// Index of the first bucket whose bound is >= value (size() = +Inf).
template <std::size_t N>
std::size_t bucket_index(const std::array<double, N>& bounds, double value) {
  std::size_t i = 0;
  while (i < N && value > bounds[i]) ++i;
  return i;
}

// bucket_index(kPacketSizeBuckets, size) without the search, for every
// packet: the bounds are 16 * 4^i, so the bucket follows from the bit width.
constexpr std::size_t packet_size_bucket(std::uint64_t size) {
  if (size <= 16) return 0;
  const auto i = static_cast<std::size_t>((std::bit_width(size - 1) - 3) / 2);
  return i < kPacketSizeBuckets.size() ? i : kPacketSizeBuckets.size();
}
static_assert(
    [] {
      for (std::size_t i = 0; i < kPacketSizeBuckets.size(); ++i) {
        if (kPacketSizeBuckets[i] != static_cast<double>(16ull << (2 * i))) return false;
      }
      return true;
    }(),
    "packet_size_bucket relies on bounds of 16 * 4^i");

}  // namespace sluice
