#!/usr/bin/python3
"""A Modbus relay board for doorbridge's tests, on Debian's python3-pymodbus
(3.0): an implementation independent of the driver's client library.

    pymodbus_board.py tcp 127.0.0.1:5020 UNITS
    pymodbus_board.py rtu /dev/pts/7 UNITS

UNITS is a comma-separated list of unit ids, each with 64 coils and 64
discrete inputs, addressed from 0. Commands on stdin, one per line:

    di UNIT ADDR 0|1     set a discrete input
    coils UNIT           print "coils UNIT <64 digits>" (coil 0 first)

"ready" is printed once the server listens (or has the serial port open).
"""
import asyncio
import sys

from pymodbus.datastore import (ModbusSequentialDataBlock, ModbusServerContext,
                                ModbusSlaveContext)
from pymodbus.server import StartAsyncSerialServer, StartAsyncTcpServer
from pymodbus.transaction import ModbusRtuFramer

N = 64


def context(units):
    slaves = {}
    for u in units:
        slaves[u] = ModbusSlaveContext(
            di=ModbusSequentialDataBlock(0, [0] * N),
            co=ModbusSequentialDataBlock(0, [0] * N),
            hr=ModbusSequentialDataBlock(0, [0] * N),
            ir=ModbusSequentialDataBlock(0, [0] * N),
            zero_mode=True)
    return ModbusServerContext(slaves=slaves, single=False)


def command(ctx, line):
    f = line.split()
    if len(f) == 4 and f[0] == "di":
        ctx[int(f[1])].setValues(2, int(f[2]), [int(f[3])])
        print("ok", flush=True)
    elif len(f) == 2 and f[0] == "coils":
        bits = ctx[int(f[1])].getValues(1, 0, N)
        print("coils", f[1], "".join("1" if b else "0" for b in bits), flush=True)
    else:
        print("error: unknown command", repr(line), flush=True)


async def main():
    kind, where, units = sys.argv[1], sys.argv[2], [int(u) for u in sys.argv[3].split(",")]
    ctx = context(units)
    loop = asyncio.get_running_loop()
    if kind == "tcp":
        host, port = where.rsplit(":", 1)
        server = await StartAsyncTcpServer(context=ctx, address=(host, int(port)), defer_start=True)
        serving = asyncio.create_task(server.serve_forever())
        while server.server is None:
            await asyncio.sleep(0.01)
    else:
        server = await StartAsyncSerialServer(context=ctx, port=where, framer=ModbusRtuFramer,
                                              baudrate=19200, defer_start=True)
        await server.start()
        serving = None
    print("ready", flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            break
        command(ctx, line.decode().strip())
    if serving:
        serving.cancel()


asyncio.run(main())
