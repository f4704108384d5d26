// Every metric sluice exports, declared once: name, type, help, labels, and the label value sets.
#include "common/metric_table.h"

namespace sluice {
namespace {

using T = MetricType;
using M = MetricId;

constexpr std::array<MetricDef, static_cast<std::size_t>(MetricId::kCount)> kTable = {{
    {M::kBuildInfo,
     "sluice_build_info",
     T::kGauge,
     "Always 1; the version label says which build",
     {"version"}},
    {M::kConnectionsTotal,
     "sluice_connections_total",
     T::kCounter,
     "Client connections accepted, refused ones included",
     {"listener"}},
    {M::kConnectionsActive,
     "sluice_connections_active",
     T::kGauge,
     "Open client sessions",
     {"listener"}},
    {M::kConnectionsRejected,
     "sluice_connections_rejected_total",
     T::kCounter,
     "Client connections refused, by reason",
     {"listener", "reason"}},
    {M::kUpstreamConnectSeconds,
     "sluice_upstream_connect_seconds",
     T::kHistogram,
     "TCP connect time to the upstream",
     {"listener"}},
    {M::kUpstreamConnectErrors,
     "sluice_upstream_connect_errors_total",
     T::kCounter,
     "Failed upstream connect attempts",
     {"listener", "upstream"}},
    {M::kPackets,
     "sluice_packets_total",
     T::kCounter,
     "Logical packets forwarded",
     {"listener", "direction"}},
    {M::kBytes,
     "sluice_bytes_total",
     T::kCounter,
     "Bytes forwarded, headers included",
     {"listener", "direction"}},
    {M::kPacketSize,
     "sluice_packet_size_bytes",
     T::kHistogram,
     "Logical packet payload sizes",
     {"listener", "direction"}},
    {M::kOversizedPackets,
     "sluice_oversized_packets_total",
     T::kCounter,
     "Packets refused for their size",
     {"listener", "direction", "action"}},
    {M::kTimeouts,
     "sluice_timeouts_total",
     T::kCounter,
     "Sessions cut off by a timeout",
     {"listener", "kind"}},
    {M::kEintrRetries,
     "sluice_eintr_retries_total",
     T::kCounter,
     "System calls retried after EINTR",
     {"listener", "op"}},
    {M::kIoErrors,
     "sluice_io_errors_total",
     T::kCounter,
     "Failed reads and writes",
     {"listener", "op"}},
    {M::kSequenceErrors,
     "sluice_sequence_errors_total",
     T::kCounter,
     "Out-of-order sequence ids seen",
     {"listener"}},
    {M::kCommands,
     "sluice_commands_total",
     T::kCounter,
     "Client commands by name",
     {"listener", "command"}},
    {M::kCommandDuration,
     "sluice_command_duration_seconds",
     T::kHistogram,
     "From a command leaving sluice to the end of its response",
     {"listener", "command"}},
    {M::kTrackerLost,
     "sluice_response_tracking_lost_total",
     T::kCounter,
     "Sessions whose responses could no longer be followed (timing stopped for them)",
     {"listener"}},
    {M::kTlsSessions,
     "sluice_tls_sessions_total",
     T::kCounter,
     "TLS sessions; passthrough ones are opaque to packet limits",
     {"listener", "mode"}},
    {M::kCompressedSessions,
     "sluice_compressed_sessions_total",
     T::kCounter,
     "Sessions that negotiated protocol compression",
     {"listener"}},
    {M::kBufferedBytes, "sluice_buffered_bytes", T::kGauge, "Packet bytes held in memory now", {}},
    {M::kMemoryLimitWaits,
     "sluice_memory_limit_waits_total",
     T::kCounter,
     "Reads paused because memory_limit was reached",
     {}},
    {M::kMemoryLimitRefusals,
     "sluice_memory_limit_refusals_total",
     T::kCounter,
     "Packets refused with out_of_memory because their payload can never fit memory_limit",
     {"listener", "direction"}},
    {M::kAllocationFailures,
     "sluice_allocation_failures_total",
     T::kCounter,
     "Packets refused with out_of_memory because the system refused the memory for them",
     {"listener", "direction"}},
    {M::kConfigReloads,
     "sluice_config_reloads_total",
     T::kCounter,
     "Configuration reloads",
     {"result"}},
}};

constexpr bool table_in_id_order() {
  for (std::size_t i = 0; i < kTable.size(); ++i) {
    if (static_cast<std::size_t>(kTable[i].id) != i) return false;
  }
  return true;
}
static_assert(table_in_id_order(), "metric table rows must follow MetricId order");

}  // namespace

std::span<const MetricDef> metric_table() {
  return kTable;
}
const MetricDef& metric_def(MetricId id) {
  return kTable[static_cast<std::size_t>(id)];
}

}  // namespace sluice
