// Replays command-phase traffic captured from MariaDB 10.11 through the response tracker.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "common/handshake.h"
#include "common/response_tracker.h"
#include "common/wire.h"

namespace sluice {
namespace {

using Step = ResponseTracker::Step;

// One logical packet: 'Q' a command, 'C' another client packet, 'S' a server packet.
struct Packet {
  char dir;
  std::string_view hex;
};
using Trace = std::vector<Packet>;

// Captured with a small Python client against mariadbd 10.11.19 (Debian 12),
// reading each response until the socket went quiet, so the captures do not
// depend on the tracker's idea of where a response ends. "Classic" negotiates
// neither CLIENT_DEPRECATE_EOF nor MariaDB's extended capabilities; "modern"
// negotiates CLIENT_DEPRECATE_EOF, MARIADB_CLIENT_CACHE_METADATA and
// MARIADB_CLIENT_PROGRESS. Table t.a(id int primary key, name varchar(20),
// v double) holds (1,'one',1.5),(2,NULL,2.5); procedure t.p() runs
// "SELECT 1 AS x; SELECT 'a' AS y, 2 AS z".
constexpr std::string_view kClassicGreeting =
    "0a352e352e352d31302e31312e31392d4d6172696144422d302b6465623132753100080000003b2f"
    "762b6f6e5b5b00fef7080200ff81150000000000001d000000363e734c5e73474b21624a2c006d79"
    "73716c5f6e61746976655f70617373776f726400";
constexpr std::string_view kClassicHello =
    "89a22f0000000001210000000000000000000000000000000000000000000000726f6f7400007400"
    "6d7973716c5f6e61746976655f70617373776f726400";
constexpr std::string_view kModernGreeting =
    "0a352e352e352d31302e31312e31392d4d6172696144422d302b6465623132753100090000002355"
    "63733a63665800fef7080200ff81150000000000001d00000062655454296e716c49674d2b006d79"
    "73716c5f6e61746976655f70617373776f726400";
constexpr std::string_view kModernHello =
    "88a2af0100000001210000000000000000000000000000000000000011000000726f6f7400007400"
    "6d7973716c5f6e61746976655f70617373776f726400";

const Trace kClassicSelectRows = {
    {'Q',
     "0353454c4543542069642c206e616d652046524f4d2061205748455245206964203c2033204f5244"
     "4552204259206964"},
    {'S', "02"},
    {'S', "036465660174016101610269640269640c3f000b000000030350000000"},
    {'S', "03646566017401610161046e616d65046e616d650c21003c000000fd0000000000"},
    {'S', "fe00000200"},
    {'S', "0131036f6e65"},
    {'S', "0132fb"},
    {'S', "fe00000200"},
};
const Trace kClassicSelectEmpty = {
    {'Q', "0353454c4543542069642046524f4d2061205748455245206964203e20313030"},
    {'S', "01"},
    {'S', "036465660174016101610269640269640c3f000b000000030350000000"},
    {'S', "fe00000200"},
    {'S', "fe00000200"},
};
const Trace kClassicInsert = {
    {'Q', "03494e5345525420494e544f20612056414c5545532028372c27736576656e272c372e3529"},
    {'S', "00010002000000"},
};
const Trace kClassicError = {
    {'Q', "0353454c454354202a2046524f4d206e6f7065"},
    {'S', "ff7a042334325330325461626c652027742e6e6f70652720646f65736e2774206578697374"},
};
const Trace kClassicMulti = {
    {'Q', "0353454c45435420313b2053454c4543542032"},
    {'S', "01"},
    {'S', "036465660000000131000c3f0001000000038100000000"},
    {'S', "fe00000a00"},
    {'S', "0131"},
    {'S', "fe00000a00"},
    {'S', "01"},
    {'S', "036465660000000132000c3f0001000000038100000000"},
    {'S', "fe00000200"},
    {'S', "0132"},
    {'S', "fe00000200"},
};
const Trace kClassicMultiErr = {
    {'Q', "0353454c45435420313b2053454c454354202a2046524f4d206e6f70653b2053454c4543542033"},
    {'S', "01"},
    {'S', "036465660000000131000c3f0001000000038100000000"},
    {'S', "fe00000a00"},
    {'S', "0131"},
    {'S', "fe00000a00"},
    {'S', "ff7a042334325330325461626c652027742e6e6f70652720646f65736e2774206578697374"},
};
const Trace kClassicCall = {
    {'Q', "0343414c4c20702829"},
    {'S', "01"},
    {'S', "036465660000000178000c3f0001000000038100000000"},
    {'S', "fe00000a00"},
    {'S', "0131"},
    {'S', "fe00000a00"},
    {'S', "02"},
    {'S', "036465660000000179000c210003000000fd0100270000"},
    {'S', "03646566000000017a000c3f0001000000038100000000"},
    {'S', "fe00000a00"},
    {'S', "01610132"},
    {'S', "fe00000a00"},
    {'S', "00000002000000"},
};
const Trace kClassicInfile = {
    {'Q',
     "034c4f41442044415441204c4f43414c20494e46494c452027782e7473762720494e544f205441424c452061"},
    {'S', "fb782e747376"},
    {'C', "31300974656e09310a313109656c6576656e09320a"},
    {'C', ""},
    {'S',
     "000200020000002f5265636f7264733a2032202044656c657465643a20302020536b69707065643a"
     "203020205761726e696e67733a2030"},
};
const Trace kClassicFieldList = {
    {'Q', "046100"},
    {'S', "036465660174016101610269640269640c3f000b0000000303500000000130"},
    {'S', "03646566017401610161046e616d65046e616d650c21003c000000fd0000000000fb"},
    {'S', "03646566017401610161017601760c3f00160000000500001f0000fb"},
    {'S', "fe00000200"},
};
const Trace kClassicStatistics = {
    {'Q', "09"},
    {'S',
     "557074696d653a2038322020546872656164733a203120205175657374696f6e733a203132342020"
     "536c6f7720717565726965733a203020204f70656e733a20323220204f70656e207461626c65733a"
     "20313520205175657269657320706572207365636f6e64206176673a20312e353132"},
};
const Trace kClassicPing = {
    {'Q', "0e"},
    {'S', "00000002000000"},
};
const Trace kClassicSetOption = {
    {'Q', "1b0000"},
    {'S', "fe00000200"},
};
const Trace kClassicInitDbErr = {
    {'Q', "026e6f737563686462"},
    {'S', "ff1904233432303030556e6b6e6f776e20646174616261736520276e6f73756368646227"},
};
const Trace kClassicPrepare = {
    {'Q', "1653454c4543542069642c206e616d652046524f4d2061205748455245206964203e203f"},
    {'S', "000d00000002000100000000"},
    {'S', "03646566000000013f000c3f0000000000068000000000"},
    {'S', "fe00000200"},
    {'S', "036465660174016101610269640269640c3f000b000000030350000000"},
    {'S', "03646566017401610161046e616d65046e616d650c21003c000000fd0000000000"},
    {'S', "fe00000200"},
};
const Trace kClassicExecute = {
    {'Q', "170d00000000010000000001030000000000"},
    {'S', "02"},
    {'S', "036465660174016101610269640269640c3f000b000000030350000000"},
    {'S', "03646566017401610161046e616d65046e616d650c21003c000000fd0000000000"},
    {'S', "fe00000200"},
    {'S', "000001000000036f6e65"},
    {'S', "000802000000"},
    {'S', "fe00000200"},
};
const Trace kClassicExecuteAgain = {
    {'Q', "170d0000000001000000000001000000"},
    {'S', "02"},
    {'S', "036465660174016101610269640269640c3f000b000000030350000000"},
    {'S', "03646566017401610161046e616d65046e616d650c21003c000000fd0000000000"},
    {'S', "fe00000200"},
    {'S', "000802000000"},
    {'S', "fe00000200"},
};
const Trace kClassicExecuteCursor = {
    {'Q', "170d00000001010000000001030000000000"},
    {'S', "02"},
    {'S', "036465660174016101610269640269640c3f000b000000030110000000"},
    {'S', "03646566017401610161046e616d65046e616d650c21003c000000fd0000000000"},
    {'S', "fe00004200"},
};
const Trace kClassicFetchOne = {
    {'Q', "1c0d00000001000000"},
    {'S', "000001000000036f6e65"},
    {'S', "fe00004200"},
};
const Trace kClassicFetchRest = {
    {'Q', "1c0d0000000a000000"},
    {'S', "000802000000"},
    {'S', "fe00008200"},
};
const Trace kClassicStmtReset = {
    {'Q', "1a0d000000"},
    {'S', "00000002000000"},
};
const Trace kClassicStmtClose = {
    {'Q', "190d000000"},
};
const Trace kClassicPrepareErr = {
    {'Q', "1653454c4543542046524f4d"},
    {'S',
     "ff2804233432303030596f75206861766520616e206572726f7220696e20796f75722053514c2073"
     "796e7461783b20636865636b20746865206d616e75616c207468617420636f72726573706f6e6473"
     "20746f20796f7572204d617269614442207365727665722076657273696f6e20666f722074686520"
     "72696768742073796e74617820746f20757365206e656172202746524f4d27206174206c696e6520"
     "31"},
};
const Trace kClassicPrepareInsert = {
    {'Q', "16494e5345525420494e544f20612056414c55455320283f2c203f2c203f29"},
    {'S', "000f00000000000300000000"},
    {'S', "03646566000000013f000c3f0000000000068000000000"},
    {'S', "03646566000000013f000c3f0000000000068000000000"},
    {'S', "03646566000000013f000c3f0000000000068000000000"},
    {'S', "fe00000200"},
};
const Trace kClassicPrepareCall = {
    {'Q', "1643414c4c20702829"},
    {'S', "001000000000000000000000"},
};
const Trace kClassicExecuteCall = {
    {'Q', "17100000000001000000"},
    {'S', "01"},
    {'S', "036465660000000178000c3f0001000000038100000000"},
    {'S', "fe00000a00"},
    {'S', "000001000000"},
    {'S', "fe00000a00"},
    {'S', "02"},
    {'S', "036465660000000179000c210003000000fd0100270000"},
    {'S', "03646566000000017a000c3f0001000000038100000000"},
    {'S', "fe00000a00"},
    {'S', "0000016102000000"},
    {'S', "fe00000a00"},
    {'S', "00000002000000"},
};
const Trace kClassicUnknownCmd = {
    {'Q', "20"},
    {'S', "ff1704233038533031556e6b6e6f776e20636f6d6d616e64"},
};
const Trace kClassicChangeUser = {
    {'Q', "11726f6f740000740021006d7973716c5f6e61746976655f70617373776f726400"},
    {'S',
     "fe6d7973716c5f6e61746976655f70617373776f7264003b2f762b6f6e5b5b363e734c5e73474b21624a2c00"},
    {'C', ""},
    {'S', "00000002000000"},
};
const Trace kClassicResetConnection = {
    {'Q', "1f"},
    {'S', "00000002000000"},
};
const Trace kClassicProcessInfo = {
    {'Q', "0a"},
    {'S', "09"},
    {'S', "03646566000000024964000c3f000b000000088100000000"},
    {'S', "036465660000000455736572000c210080010000fd0100270000"},
    {'S', "0364656600000004486f7374000c2100c0000000fd0100270000"},
    {'S', "03646566000000026462000c2100c0000000fd0000270000"},
    {'S', "0364656600000007436f6d6d616e64000c210030000000fd0100270000"},
    {'S', "036465660000000454696d65000c3f0007000000038100000000"},
    {'S', "03646566000000055374617465000c21005a000000fd0000270000"},
    {'S', "0364656600000004496e666f000c21002c010000fd0000270000"},
    {'S', "036465660000000850726f6772657373000c3f0007000000058100030000"},
    {'S', "fe00000200"},
    {'S',
     "013804726f6f740f6c6f63616c686f73743a353235363001740b50726f636573736c697374013008"
     "7374617274696e67fb05302e303030"},
    {'S', "fe00000200"},
};
const Trace kClassicDebug = {
    {'Q', "0d"},
    {'S', "fe00000200"},
};
const Trace kClassicSleep = {
    {'Q', "00"},
    {'S', "ff1704233038533031556e6b6e6f776e20636f6d6d616e64"},
};
const Trace kClassicEmptyCmd = {
    {'Q', ""},
    {'S', "ff1704233038533031556e6b6e6f776e20636f6d6d616e64"},
};
const Trace kClassicSendLongData = {
    {'Q', "18110000000000616263"},
};
const Trace kClassicPipelined = {
    {'Q', "0353454c4543542031"},
    {'Q', "03444f2031"},
    {'S', "01"},
    {'S', "036465660000000131000c3f0001000000038100000000"},
    {'S', "fe00000200"},
    {'S', "0131"},
    {'S', "fe00000200"},
    {'S', "00000002000000"},
};
const Trace kClassicQuit = {
    {'Q', "01"},
};
const Trace kModernSelectRows = {
    {'Q',
     "0353454c4543542069642c206e616d652046524f4d2061205748455245206964203c2033204f5244"
     "4552204259206964"},
    {'S', "0201"},
    {'S', "036465660174016101610269640269640c3f000b000000030350000000"},
    {'S', "03646566017401610161046e616d65046e616d650c21003c000000fd0000000000"},
    {'S', "0131036f6e65"},
    {'S', "0132fb"},
    {'S', "fe000002000000"},
};
const Trace kModernSelectEmpty = {
    {'Q', "0353454c4543542069642046524f4d2061205748455245206964203e20313030"},
    {'S', "0101"},
    {'S', "036465660174016101610269640269640c3f000b000000030350000000"},
    {'S', "fe000002000000"},
};
const Trace kModernInsert = {
    {'Q', "03494e5345525420494e544f20612056414c5545532028372c27736576656e272c372e3529"},
    {'S', "00010002000000"},
};
const Trace kModernError = {
    {'Q', "0353454c454354202a2046524f4d206e6f7065"},
    {'S', "ff7a042334325330325461626c652027742e6e6f70652720646f65736e2774206578697374"},
};
const Trace kModernMulti = {
    {'Q', "0353454c45435420313b2053454c4543542032"},
    {'S', "0101"},
    {'S', "036465660000000131000c3f0001000000038100000000"},
    {'S', "0131"},
    {'S', "fe00000a000000"},
    {'S', "0101"},
    {'S', "036465660000000132000c3f0001000000038100000000"},
    {'S', "0132"},
    {'S', "fe000002000000"},
};
const Trace kModernMultiErr = {
    {'Q', "0353454c45435420313b2053454c454354202a2046524f4d206e6f70653b2053454c4543542033"},
    {'S', "0101"},
    {'S', "036465660000000131000c3f0001000000038100000000"},
    {'S', "0131"},
    {'S', "fe00000a000000"},
    {'S', "ff7a042334325330325461626c652027742e6e6f70652720646f65736e2774206578697374"},
};
const Trace kModernCall = {
    {'Q', "0343414c4c20702829"},
    {'S', "0101"},
    {'S', "036465660000000178000c3f0001000000038100000000"},
    {'S', "0131"},
    {'S', "fe00000a000000"},
    {'S', "0201"},
    {'S', "036465660000000179000c210003000000fd0100270000"},
    {'S', "03646566000000017a000c3f0001000000038100000000"},
    {'S', "01610132"},
    {'S', "fe00000a000000"},
    {'S', "00000002000000"},
};
const Trace kModernInfile = {
    {'Q',
     "034c4f41442044415441204c4f43414c20494e46494c452027782e7473762720494e544f205441424c452061"},
    {'S', "fb782e747376"},
    {'C', "31300974656e09310a313109656c6576656e09320a"},
    {'C', ""},
    {'S', "ffffff0102020000000f456e642062756c6b20696e73657274"},
    {'S',
     "000200020000002f5265636f7264733a2032202044656c657465643a20302020536b69707065643a"
     "203020205761726e696e67733a2030"},
};
const Trace kModernFieldList = {
    {'Q', "046100"},
    {'S', "036465660174016101610269640269640c3f000b0000000303500000000130"},
    {'S', "03646566017401610161046e616d65046e616d650c21003c000000fd0000000000fb"},
    {'S', "03646566017401610161017601760c3f00160000000500001f0000fb"},
    {'S', "fe000002000000"},
};
const Trace kModernStatistics = {
    {'Q', "09"},
    {'S',
     "557074696d653a203130302020546872656164733a203120205175657374696f6e733a2031373120"
     "20536c6f7720717565726965733a203020204f70656e733a20323220204f70656e207461626c6573"
     "3a20313520205175657269657320706572207365636f6e64206176673a20312e373130"},
};
const Trace kModernPing = {
    {'Q', "0e"},
    {'S', "00000002000000"},
};
const Trace kModernSetOption = {
    {'Q', "1b0000"},
    {'S', "fe000002000000"},
};
const Trace kModernInitDbErr = {
    {'Q', "026e6f737563686462"},
    {'S', "ff1904233432303030556e6b6e6f776e20646174616261736520276e6f73756368646227"},
};
const Trace kModernPrepare = {
    {'Q', "1653454c4543542069642c206e616d652046524f4d2061205748455245206964203e203f"},
    {'S', "001200000002000100000000"},
    {'S', "03646566000000013f000c3f0000000000068000000000"},
    {'S', "036465660174016101610269640269640c3f000b000000030350000000"},
    {'S', "03646566017401610161046e616d65046e616d650c21003c000000fd0000000000"},
};
const Trace kModernExecute = {
    {'Q', "171200000000010000000001030000000000"},
    {'S', "0200"},
    {'S', "000001000000036f6e65"},
    {'S', "000802000000"},
    {'S', "fe000002000000"},
};
const Trace kModernExecuteAgain = {
    {'Q', "17120000000001000000000001000000"},
    {'S', "0200"},
    {'S', "000802000000"},
    {'S', "fe000002000000"},
};
const Trace kModernExecuteCursor = {
    {'Q', "171200000001010000000001030000000000"},
    {'S', "0201"},
    {'S', "036465660174016101610269640269640c3f000b000000030110000000"},
    {'S', "03646566017401610161046e616d65046e616d650c21003c000000fd0000000000"},
    {'S', "fe000042000000"},
};
const Trace kModernFetchOne = {
    {'Q', "1c1200000001000000"},
    {'S', "000001000000036f6e65"},
    {'S', "fe000042000000"},
};
const Trace kModernFetchRest = {
    {'Q', "1c120000000a000000"},
    {'S', "000802000000"},
    {'S', "fe000082000000"},
};
const Trace kModernStmtReset = {
    {'Q', "1a12000000"},
    {'S', "00000002000000"},
};
const Trace kModernStmtClose = {
    {'Q', "1912000000"},
};
const Trace kModernPrepareErr = {
    {'Q', "1653454c4543542046524f4d"},
    {'S',
     "ff2804233432303030596f75206861766520616e206572726f7220696e20796f75722053514c2073"
     "796e7461783b20636865636b20746865206d616e75616c207468617420636f72726573706f6e6473"
     "20746f20796f7572204d617269614442207365727665722076657273696f6e20666f722074686520"
     "72696768742073796e74617820746f20757365206e656172202746524f4d27206174206c696e6520"
     "31"},
};
const Trace kModernPrepareInsert = {
    {'Q', "16494e5345525420494e544f20612056414c55455320283f2c203f2c203f29"},
    {'S', "001400000000000300000000"},
    {'S', "03646566000000013f000c3f0000000000068000000000"},
    {'S', "03646566000000013f000c3f0000000000068000000000"},
    {'S', "03646566000000013f000c3f0000000000068000000000"},
};
const Trace kModernPrepareCall = {
    {'Q', "1643414c4c20702829"},
    {'S', "001500000000000000000000"},
};
const Trace kModernExecuteCall = {
    {'Q', "17150000000001000000"},
    {'S', "0101"},
    {'S', "036465660000000178000c3f0001000000038100000000"},
    {'S', "000001000000"},
    {'S', "fe00000a000000"},
    {'S', "0201"},
    {'S', "036465660000000179000c210003000000fd0100270000"},
    {'S', "03646566000000017a000c3f0001000000038100000000"},
    {'S', "0000016102000000"},
    {'S', "fe00000a000000"},
    {'S', "00000002000000"},
};
const Trace kModernUnknownCmd = {
    {'Q', "20"},
    {'S', "ff1704233038533031556e6b6e6f776e20636f6d6d616e64"},
};
const Trace kModernChangeUser = {
    {'Q', "11726f6f740000740021006d7973716c5f6e61746976655f70617373776f726400"},
    {'S',
     "fe6d7973716c5f6e61746976655f70617373776f726400235563733a63665862655454296e716c49674d2b00"},
    {'C', ""},
    {'S', "00000002400000000401020174"},
};
const Trace kModernResetConnection = {
    {'Q', "1f"},
    {'S', "00000002000000"},
};
const Trace kModernProcessInfo = {
    {'Q', "0a"},
    {'S', "0901"},
    {'S', "03646566000000024964000c3f000b000000088100000000"},
    {'S', "036465660000000455736572000c210080010000fd0100270000"},
    {'S', "0364656600000004486f7374000c2100c0000000fd0100270000"},
    {'S', "03646566000000026462000c2100c0000000fd0000270000"},
    {'S', "0364656600000007436f6d6d616e64000c210030000000fd0100270000"},
    {'S', "036465660000000454696d65000c3f0007000000038100000000"},
    {'S', "03646566000000055374617465000c21005a000000fd0000270000"},
    {'S', "0364656600000004496e666f000c21002c010000fd0000270000"},
    {'S', "036465660000000850726f6772657373000c3f0007000000058100030000"},
    {'S',
     "013904726f6f740f6c6f63616c686f73743a353432323401740b50726f636573736c697374013008"
     "7374617274696e67fb05302e303030"},
    {'S', "fe000002000000"},
};
const Trace kModernDebug = {
    {'Q', "0d"},
    {'S', "fe000002000000"},
};
const Trace kModernSleep = {
    {'Q', "00"},
    {'S', "ff1704233038533031556e6b6e6f776e20636f6d6d616e64"},
};
const Trace kModernEmptyCmd = {
    {'Q', ""},
    {'S', "ff1704233038533031556e6b6e6f776e20636f6d6d616e64"},
};
const Trace kModernSendLongData = {
    {'Q', "18160000000000616263"},
};
const Trace kModernPipelined = {
    {'Q', "0353454c4543542031"},
    {'Q', "03444f2031"},
    {'S', "0101"},
    {'S', "036465660000000131000c3f0001000000038100000000"},
    {'S', "0131"},
    {'S', "fe000002000000"},
    {'S', "00000002000000"},
};
const Trace kModernQuit = {
    {'Q', "01"},
};

const std::vector<std::pair<std::string_view, const Trace*>> kClassicTraces = {
    {"select_rows", &kClassicSelectRows},
    {"select_empty", &kClassicSelectEmpty},
    {"insert", &kClassicInsert},
    {"error", &kClassicError},
    {"multi", &kClassicMulti},
    {"multi_err", &kClassicMultiErr},
    {"call", &kClassicCall},
    {"infile", &kClassicInfile},
    {"field_list", &kClassicFieldList},
    {"statistics", &kClassicStatistics},
    {"ping", &kClassicPing},
    {"set_option", &kClassicSetOption},
    {"init_db_err", &kClassicInitDbErr},
    {"prepare", &kClassicPrepare},
    {"execute", &kClassicExecute},
    {"execute_again", &kClassicExecuteAgain},
    {"execute_cursor", &kClassicExecuteCursor},
    {"fetch_one", &kClassicFetchOne},
    {"fetch_rest", &kClassicFetchRest},
    {"stmt_reset", &kClassicStmtReset},
    {"stmt_close", &kClassicStmtClose},
    {"prepare_err", &kClassicPrepareErr},
    {"prepare_insert", &kClassicPrepareInsert},
    {"prepare_call", &kClassicPrepareCall},
    {"execute_call", &kClassicExecuteCall},
    {"change_user", &kClassicChangeUser},
    {"reset_connection", &kClassicResetConnection},
    {"process_info", &kClassicProcessInfo},
    {"debug", &kClassicDebug},
    {"sleep", &kClassicSleep},
    {"empty_cmd", &kClassicEmptyCmd},
    {"send_long_data", &kClassicSendLongData},
    {"pipelined", &kClassicPipelined},
};
const std::vector<std::pair<std::string_view, const Trace*>> kModernTraces = {
    {"select_rows", &kModernSelectRows},
    {"select_empty", &kModernSelectEmpty},
    {"insert", &kModernInsert},
    {"error", &kModernError},
    {"multi", &kModernMulti},
    {"multi_err", &kModernMultiErr},
    {"call", &kModernCall},
    {"infile", &kModernInfile},
    {"field_list", &kModernFieldList},
    {"statistics", &kModernStatistics},
    {"ping", &kModernPing},
    {"set_option", &kModernSetOption},
    {"init_db_err", &kModernInitDbErr},
    {"prepare", &kModernPrepare},
    {"execute", &kModernExecute},
    {"execute_again", &kModernExecuteAgain},
    {"execute_cursor", &kModernExecuteCursor},
    {"fetch_one", &kModernFetchOne},
    {"fetch_rest", &kModernFetchRest},
    {"stmt_reset", &kModernStmtReset},
    {"stmt_close", &kModernStmtClose},
    {"prepare_err", &kModernPrepareErr},
    {"prepare_insert", &kModernPrepareInsert},
    {"prepare_call", &kModernPrepareCall},
    {"execute_call", &kModernExecuteCall},
    {"change_user", &kModernChangeUser},
    {"reset_connection", &kModernResetConnection},
    {"process_info", &kModernProcessInfo},
    {"debug", &kModernDebug},
    {"sleep", &kModernSleep},
    {"empty_cmd", &kModernEmptyCmd},
    {"send_long_data", &kModernSendLongData},
    {"pipelined", &kModernPipelined},
};

std::vector<std::uint8_t> hex(std::string_view text) {
  std::vector<std::uint8_t> out;
  auto nibble = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  for (std::size_t i = 0; i + 1 < text.size(); i += 2) {
    out.push_back(static_cast<std::uint8_t>(nibble(text[i]) << 4 | nibble(text[i + 1])));
  }
  return out;
}

// The capabilities both sides agreed on, from the real greeting and hello.
std::uint64_t negotiated(std::string_view greeting, std::string_view hello) {
  const auto g = parse_server_greeting(hex(greeting));
  const auto h = parse_client_hello(hex(hello));
  REQUIRE(g);
  REQUIRE(h);
  return g->capabilities & h->capabilities;
}

// Feeds one packet, passing at most `prefix` payload bytes with the full length,
// as a caller that has not buffered a large packet would.
Step feed(ResponseTracker& t, const Packet& p, std::size_t prefix) {
  const auto bytes = hex(p.hex);
  const auto span = std::span(bytes).first(std::min(prefix, bytes.size()));
  switch (p.dir) {
    case 'Q':
      return t.on_command(span, bytes.size());
    case 'C':
      return t.on_client_packet(span, bytes.size());
    default:
      return t.on_server_packet(span, bytes.size());
  }
}

// The trace's last packet completes the last response; until then the tracker
// is busy, and every command of the trace gets exactly one completion.
void expect_complete_at_end(const Trace& trace, std::uint64_t caps, std::size_t prefix) {
  ResponseTracker t;
  t.set_capabilities(caps);
  REQUIRE(t.idle());
  int commands = 0;
  int completions = 0;
  Step step = Step::kContinue;
  for (std::size_t i = 0; i < trace.size(); ++i) {
    CAPTURE(i);
    step = feed(t, trace[i], prefix);
    REQUIRE(step != Step::kUnexpected);
    commands += trace[i].dir == 'Q';
    completions += step == Step::kComplete;
    if (i + 1 < trace.size()) CHECK_FALSE(t.idle());
  }
  CHECK(step == Step::kComplete);
  CHECK(completions == commands);
  CHECK(t.idle());
  CHECK_FALSE(t.lost());
  CHECK_FALSE(t.awaiting_client());
}

void expect_all(const std::vector<std::pair<std::string_view, const Trace*>>& traces,
                std::uint64_t caps) {
  for (const auto& entry : traces) {
    CAPTURE(entry.first);
    expect_complete_at_end(*entry.second, caps, SIZE_MAX);
    expect_complete_at_end(*entry.second, caps, 64);  // only a prefix of long packets
  }
}

TEST_CASE("captures: the negotiated capabilities are what each mode asked for") {
  const std::uint64_t classic = negotiated(kClassicGreeting, kClassicHello);
  const std::uint64_t modern = negotiated(kModernGreeting, kModernHello);
  CHECK((classic & wire::kClientDeprecateEof) == 0);
  CHECK((classic >> 32) == 0);
  CHECK((modern & wire::kClientDeprecateEof) != 0);
  CHECK((modern & wire::kMariaDbClientCacheMetadata) != 0);
  CHECK((modern & wire::kMariaDbClientProgress) != 0);
}

TEST_CASE("captures without DEPRECATE_EOF: every response ends at its last packet") {
  expect_all(kClassicTraces, negotiated(kClassicGreeting, kClassicHello));
}

TEST_CASE("captures with DEPRECATE_EOF and metadata caching: each response ends at its end") {
  expect_all(kModernTraces, negotiated(kModernGreeting, kModernHello));
}

TEST_CASE("captures: a whole session through one tracker") {
  for (const bool modern : {false, true}) {
    CAPTURE(modern);
    ResponseTracker t;
    t.set_capabilities(modern ? negotiated(kModernGreeting, kModernHello)
                              : negotiated(kClassicGreeting, kClassicHello));
    int commands = 0;
    int completions = 0;
    for (const auto& entry : modern ? kModernTraces : kClassicTraces) {
      CAPTURE(entry.first);
      for (const Packet& p : *entry.second) {
        const Step step = feed(t, p, SIZE_MAX);
        REQUIRE(step != Step::kUnexpected);
        commands += p.dir == 'Q';
        completions += step == Step::kComplete;
      }
      CHECK(t.idle());
    }
    CHECK(completions == commands);
  }
}

TEST_CASE("captures: pipelined commands complete in order") {
  for (const bool modern : {false, true}) {
    CAPTURE(modern);
    const Trace& trace = modern ? kModernPipelined : kClassicPipelined;
    ResponseTracker t;
    t.set_capabilities(modern ? negotiated(kModernGreeting, kModernHello)
                              : negotiated(kClassicGreeting, kClassicHello));
    REQUIRE(feed(t, trace[0], SIZE_MAX) == Step::kContinue);
    REQUIRE(feed(t, trace[1], SIZE_MAX) == Step::kContinue);
    CHECK(t.outstanding() == 2);
    CHECK(t.current_command() == 0x03);
    std::vector<std::size_t> completed_at;
    for (std::size_t i = 2; i < trace.size(); ++i) {
      if (feed(t, trace[i], SIZE_MAX) == Step::kComplete) completed_at.push_back(i);
    }
    // The SELECT's terminator, then the OK of the DO.
    REQUIRE(completed_at.size() == 2);
    CHECK(completed_at[0] == trace.size() - 2);
    CHECK(completed_at[1] == trace.size() - 1);
    CHECK(t.idle());
  }
}

TEST_CASE("captures: LOCAL INFILE turns the client's packets into file content") {
  for (const bool modern : {false, true}) {
    CAPTURE(modern);
    const Trace& trace = modern ? kModernInfile : kClassicInfile;
    ResponseTracker t;
    t.set_capabilities(modern ? negotiated(kModernGreeting, kModernHello)
                              : negotiated(kClassicGreeting, kClassicHello));
    CHECK(feed(t, trace[0], SIZE_MAX) == Step::kContinue);
    CHECK_FALSE(t.awaiting_client());
    CHECK(feed(t, trace[1], SIZE_MAX) == Step::kContinue);  // 0xFB + file name
    CHECK(t.awaiting_client());
    CHECK(feed(t, trace[2], SIZE_MAX) == Step::kContinue);  // file content
    CHECK(t.awaiting_client());
    CHECK(feed(t, trace[3], SIZE_MAX) == Step::kContinue);  // the empty packet
    CHECK_FALSE(t.awaiting_client());
    CHECK_FALSE(t.idle());
    for (std::size_t i = 4; i + 1 < trace.size(); ++i) {  // a progress report (modern)
      CHECK(feed(t, trace[i], SIZE_MAX) == Step::kContinue);
    }
    CHECK(feed(t, trace.back(), SIZE_MAX) == Step::kComplete);
    CHECK(t.idle());
  }
}

TEST_CASE("captures: COM_CHANGE_USER with an auth switch") {
  const Trace& trace = kClassicChangeUser;
  ResponseTracker t;
  t.set_capabilities(negotiated(kClassicGreeting, kClassicHello));
  CHECK(feed(t, trace[0], SIZE_MAX) == Step::kContinue);
  CHECK_FALSE(t.awaiting_client());
  CHECK(feed(t, trace[1], SIZE_MAX) == Step::kContinue);  // 0xFE auth switch
  CHECK(t.awaiting_client());
  CHECK(feed(t, trace[2], SIZE_MAX) == Step::kContinue);  // the client's auth data
  CHECK(feed(t, trace[3], SIZE_MAX) == Step::kComplete);  // OK
  CHECK_FALSE(t.awaiting_client());
  CHECK(t.idle());
  CHECK(t.last_completion().command == 0x11);
}

TEST_CASE("captures: a cursor's execute ends after the metadata, fetches at their EOF") {
  for (const bool modern : {false, true}) {
    CAPTURE(modern);
    ResponseTracker t;
    t.set_capabilities(modern ? negotiated(kModernGreeting, kModernHello)
                              : negotiated(kClassicGreeting, kClassicHello));
    for (const Trace* trace :
         modern ? std::vector{&kModernExecuteCursor, &kModernFetchOne, &kModernFetchRest}
                : std::vector{&kClassicExecuteCursor, &kClassicFetchOne, &kClassicFetchRest}) {
      for (std::size_t i = 0; i < trace->size(); ++i) {
        const Step step = feed(t, (*trace)[i], SIZE_MAX);
        CHECK(step == (i + 1 == trace->size() ? Step::kComplete : Step::kContinue));
      }
    }
    CHECK(t.idle());
  }
}

TEST_CASE("captures: commands without a response complete on the spot") {
  for (const Trace* trace : {&kClassicStmtClose, &kClassicSendLongData}) {
    ResponseTracker t;
    REQUIRE(trace->size() == 1);
    CHECK(feed(t, trace->front(), SIZE_MAX) == Step::kComplete);
    CHECK(t.idle());
  }
  ResponseTracker t;
  const std::uint8_t quit[] = {0x01};
  CHECK(t.on_command(quit, 1, 42) == Step::kComplete);
  CHECK(t.last_completion().command == 0x01);
  CHECK(t.last_completion().tag == 42);
  CHECK(t.idle());
}

TEST_CASE("captures: MySQL's COM_CLONE, unknown to MariaDB, is answered by one ERR") {
  ResponseTracker t;
  t.set_capabilities(negotiated(kModernGreeting, kModernHello));
  const std::uint8_t clone[] = {0x20};
  CHECK(t.on_command(clone, 1) == Step::kContinue);
  CHECK_FALSE(t.idle());
  // MariaDB answers "Unknown command" (1047), and the session goes on.
  const auto err = hex("ff1704233038533031556e6b6e6f776e20636f6d6d616e64");
  CHECK(t.on_server_packet(err, err.size()) == Step::kComplete);
  CHECK(t.idle());
  CHECK_FALSE(t.lost());
}

}  // namespace
}  // namespace sluice
