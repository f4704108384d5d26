// Tests command names and the dense metric index.
#include "common/command.h"

#include <doctest/doctest.h>

#include <set>
#include <string_view>

namespace sluice {
namespace {

TEST_CASE("command names") {
  CHECK(command_name(kComSleep) == "COM_SLEEP");
  CHECK(command_name(kComQuit) == "COM_QUIT");
  CHECK(command_name(kComInitDb) == "COM_INIT_DB");
  CHECK(command_name(kComQuery) == "COM_QUERY");
  CHECK(command_name(kComFieldList) == "COM_FIELD_LIST");
  CHECK(command_name(kComStatistics) == "COM_STATISTICS");
  CHECK(command_name(kComPing) == "COM_PING");
  CHECK(command_name(kComChangeUser) == "COM_CHANGE_USER");
  CHECK(command_name(kComBinlogDump) == "COM_BINLOG_DUMP");
  CHECK(command_name(kComStmtPrepare) == "COM_STMT_PREPARE");
  CHECK(command_name(kComStmtExecute) == "COM_STMT_EXECUTE");
  CHECK(command_name(kComStmtSendLongData) == "COM_STMT_SEND_LONG_DATA");
  CHECK(command_name(kComStmtClose) == "COM_STMT_CLOSE");
  CHECK(command_name(kComStmtReset) == "COM_STMT_RESET");
  CHECK(command_name(kComSetOption) == "COM_SET_OPTION");
  CHECK(command_name(kComStmtFetch) == "COM_STMT_FETCH");
  CHECK(command_name(kComBinlogDumpGtid) == "COM_BINLOG_DUMP_GTID");
  CHECK(command_name(kComResetConnection) == "COM_RESET_CONNECTION");
  CHECK(command_name(kComStmtBulkExecute) == "COM_STMT_BULK_EXECUTE");
  CHECK(command_name(0x20) == "COM_UNKNOWN");
  CHECK(command_name(0xFB) == "COM_UNKNOWN");
  CHECK(command_name(0xFF) == "COM_UNKNOWN");
}

TEST_CASE("every classic command has its own name") {
  std::set<std::string_view> names;
  for (unsigned c = 0; c <= kComResetConnection; ++c) {
    const std::string_view name = command_name(static_cast<std::uint8_t>(c));
    CHECK(name.substr(0, 4) == "COM_");
    CHECK(name != "COM_UNKNOWN");
    names.insert(name);
  }
  CHECK(names.size() == 0x20);
}

TEST_CASE("dense index: one slot per command, unknown bytes share one") {
  static_assert(command_index(kComQuery) == kComQuery);
  static_assert(command_index(kComStmtBulkExecute) == kCommandBulkExecuteIndex);
  static_assert(command_index(0x20) == kCommandUnknownIndex);
  for (unsigned c = 0; c < 256; ++c) {
    const auto command = static_cast<std::uint8_t>(c);
    const std::size_t index = command_index(command);
    REQUIRE(index < kCommandLabelCount);
    CHECK(command_label(index) == command_name(command));
  }
  CHECK(command_label(kCommandUnknownIndex) == "COM_UNKNOWN");
  CHECK(command_label(kCommandLabelCount) == "COM_UNKNOWN");
  CHECK(command_label(1000) == "COM_UNKNOWN");
  std::set<std::string_view> labels;
  for (std::size_t i = 0; i < kCommandLabelCount; ++i) labels.insert(command_label(i));
  CHECK(labels.size() == kCommandLabelCount);
}

}  // namespace
}  // namespace sluice
