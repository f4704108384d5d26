// Loopback TCP ports: picking free ones for servers a test starts, and seeing when one listens.
#pragma once

namespace sluice::test {

// Returns a port on 127.0.0.1 that was free a moment ago. It is chosen below the
// kernel's ephemeral range (ip_local_port_range) so that the local end of some
// unrelated outgoing connection cannot already hold it, at random so that test
// processes running in parallel rarely pick the same one, and never twice
// within one process. Callers that bind later must still cope with losing a race.
int free_port();

// True when some socket is in LISTEN state on `port` (read from /proc/net/tcp
// and tcp6, so unlike a probe connection it is invisible to the listener and
// its connection metrics).
bool port_listening(int port);

// True when a TCP connection to 127.0.0.1:`port` is accepted (and then closed).
bool port_accepts(int port);

}  // namespace sluice::test
