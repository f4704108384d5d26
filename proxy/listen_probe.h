// Refuses a listen address that another socket already listens on, before sluice binds it.
#pragma once

#include <string>
#include <vector>

#include "common/config.h"

namespace sluice {

// Binds and listens on each listener's address (port 0 skipped: the kernel picks a free one)
// without SO_REUSEPORT, holding every probe until all are bound, then closes them. The workers
// bind with SO_REUSEPORT so that they share a port; that also lets another process that sets
// it (a second sluice) share the port and take part of the traffic. A probe cannot, so a port
// in use anywhere, or twice in this config, fails here as it would for mysqld. False with
// `error` ("listeners[0].listen 127.0.0.1:6033: Address already in use") when one fails.
bool probe_listen_addresses(const std::vector<ListenerConfig>& listeners, std::string* error);
// The same for the metrics endpoint, whose HTTP server would only say that it failed to bind:
// "metrics.listen 127.0.0.1:9104: Address already in use".
bool probe_metrics_address(const HostPort& listen, std::string* error);

}  // namespace sluice
