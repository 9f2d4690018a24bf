"""Run a program that insists on listening on every address (`:PORT`) in a network namespace of its own,
reachable through a Unix socket: `unshare --net python netns_relay.py SOCKET PORT -- PROGRAM ARGS...`.

The real llm-d-inference-sim binds `:PORT` on all addresses, so several of them (one per pod of a pool,
all on the pool's target port) cannot share this machine's network. Each gets a namespace with only its
own loopback; this relay brings that loopback up, starts the program, and passes every connection made to
SOCKET (a file, which both namespaces see) on to 127.0.0.1:PORT inside. Outside, dataplane.py listens on
the pod's IP and port and connects to SOCKET. Everything stays on loopback. Exits when the program does.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def main(socket_path: str, port: int, argv: list[str]) -> int:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=30)
    program = await asyncio.create_subprocess_exec(*argv)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            inner_reader, inner_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, inner_writer), pipe(inner_reader, writer))

    if os.path.exists(socket_path):
        os.unlink(socket_path)
    server = await asyncio.start_unix_server(handle, socket_path)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, program.terminate)
    async with server:
        code = await program.wait()
    return code


if __name__ == "__main__":
    separator = sys.argv.index("--")
    socket_path, port = sys.argv[1], int(sys.argv[2])
    raise SystemExit(asyncio.run(main(socket_path, port, sys.argv[separator + 1 :])))
