// systemd's notification protocol (sd_notify(3)) without linking libsystemd:
// one datagram to the AF_UNIX socket named by $NOTIFY_SOCKET.
#pragma once
#include <string>

namespace beamedge {

// Returns false when $NOTIFY_SOCKET is unset (not run by systemd); throws
// std::runtime_error when the socket exists but the send fails.
bool sd_notify_send(const std::string& state);

}  // namespace beamedge
