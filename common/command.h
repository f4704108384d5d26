// Client command bytes of the classic protocol: constants, names and a dense metric index.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sluice {

// The first payload byte of a command packet (sequence id 0, command phase).
inline constexpr std::uint8_t kComSleep = 0x00;
inline constexpr std::uint8_t kComQuit = 0x01;
inline constexpr std::uint8_t kComInitDb = 0x02;
inline constexpr std::uint8_t kComQuery = 0x03;
inline constexpr std::uint8_t kComFieldList = 0x04;
inline constexpr std::uint8_t kComCreateDb = 0x05;
inline constexpr std::uint8_t kComDropDb = 0x06;
inline constexpr std::uint8_t kComRefresh = 0x07;
inline constexpr std::uint8_t kComShutdown = 0x08;
inline constexpr std::uint8_t kComStatistics = 0x09;
inline constexpr std::uint8_t kComProcessInfo = 0x0A;
inline constexpr std::uint8_t kComConnect = 0x0B;
inline constexpr std::uint8_t kComProcessKill = 0x0C;
inline constexpr std::uint8_t kComDebug = 0x0D;
inline constexpr std::uint8_t kComPing = 0x0E;
inline constexpr std::uint8_t kComTime = 0x0F;
inline constexpr std::uint8_t kComDelayedInsert = 0x10;
inline constexpr std::uint8_t kComChangeUser = 0x11;
inline constexpr std::uint8_t kComBinlogDump = 0x12;
inline constexpr std::uint8_t kComTableDump = 0x13;
inline constexpr std::uint8_t kComConnectOut = 0x14;
inline constexpr std::uint8_t kComRegisterSlave = 0x15;
inline constexpr std::uint8_t kComStmtPrepare = 0x16;
inline constexpr std::uint8_t kComStmtExecute = 0x17;
inline constexpr std::uint8_t kComStmtSendLongData = 0x18;
inline constexpr std::uint8_t kComStmtClose = 0x19;
inline constexpr std::uint8_t kComStmtReset = 0x1A;
inline constexpr std::uint8_t kComSetOption = 0x1B;
inline constexpr std::uint8_t kComStmtFetch = 0x1C;
inline constexpr std::uint8_t kComDaemon = 0x1D;
inline constexpr std::uint8_t kComBinlogDumpGtid = 0x1E;
inline constexpr std::uint8_t kComResetConnection = 0x1F;
// MariaDB only: array binding for prepared statements.
inline constexpr std::uint8_t kComStmtBulkExecute = 0xFA;

// "COM_QUERY", "COM_STMT_PREPARE", ...; "COM_UNKNOWN" for bytes outside the table.
std::string_view command_name(std::uint8_t command);

// Dense metric index: 0x00..0x1F map to themselves, COM_STMT_BULK_EXECUTE to 32,
// every other byte shares the COM_UNKNOWN slot, so per-command metrics can be a
// fixed array of kCommandLabelCount entries.
inline constexpr std::size_t kCommandBulkExecuteIndex = 0x20;
inline constexpr std::size_t kCommandUnknownIndex = 0x21;
inline constexpr std::size_t kCommandLabelCount = 0x22;

constexpr std::size_t command_index(std::uint8_t command) {
  if (command <= kComResetConnection) return command;
  return command == kComStmtBulkExecute ? kCommandBulkExecuteIndex : kCommandUnknownIndex;
}

// The label of a dense index; "COM_UNKNOWN" for kCommandUnknownIndex and beyond.
std::string_view command_label(std::size_t index);

}  // namespace sluice
