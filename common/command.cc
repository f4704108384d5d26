// Client command bytes of the classic protocol: constants, names and a dense metric index.
#include "common/command.h"

#include <array>

namespace sluice {
namespace {

// Indexed by command_index(); the names are those of MySQL's enum_server_command.
constexpr std::array<std::string_view, kCommandLabelCount> kLabels = {
    "COM_SLEEP",
    "COM_QUIT",
    "COM_INIT_DB",
    "COM_QUERY",
    "COM_FIELD_LIST",
    "COM_CREATE_DB",
    "COM_DROP_DB",
    "COM_REFRESH",
    "COM_SHUTDOWN",
    "COM_STATISTICS",
    "COM_PROCESS_INFO",
    "COM_CONNECT",
    "COM_PROCESS_KILL",
    "COM_DEBUG",
    "COM_PING",
    "COM_TIME",
    "COM_DELAYED_INSERT",
    "COM_CHANGE_USER",
    "COM_BINLOG_DUMP",
    "COM_TABLE_DUMP",
    "COM_CONNECT_OUT",
    "COM_REGISTER_SLAVE",
    "COM_STMT_PREPARE",
    "COM_STMT_EXECUTE",
    "COM_STMT_SEND_LONG_DATA",
    "COM_STMT_CLOSE",
    "COM_STMT_RESET",
    "COM_SET_OPTION",
    "COM_STMT_FETCH",
    "COM_DAEMON",
    "COM_BINLOG_DUMP_GTID",
    "COM_RESET_CONNECTION",
    "COM_STMT_BULK_EXECUTE",
    "COM_UNKNOWN",
};

}  // namespace

std::string_view command_name(std::uint8_t command) {
  return kLabels[command_index(command)];
}

std::string_view command_label(std::size_t index) {
  return index < kCommandLabelCount ? kLabels[index] : kLabels[kCommandUnknownIndex];
}

}  // namespace sluice
