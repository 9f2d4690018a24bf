"""Benchmark: 1000 completion requests through verify's engine to 3 local sims, beside a plain
httpx loop doing the same. Goal (issue 4): the engine within 1.3x of the plain loop's time.

The sims run as separate `igwlab sim` processes on 127.0.0.1, so they do not share the client's
interpreter. Bounded: a fixed number of requests, and every process is stopped at the end.

    python benchmarks/bench_verify.py [--requests 1000] [--concurrency 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import time
from contextlib import AsyncExitStack, ExitStack

import httpx

from igwlab.verify.engine import Engine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sims(stack: ExitStack, count: int) -> list[str]:
    urls = []
    for index in range(count):
        port = free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "igwlab",
                "sim",
                "--port",
                str(port),
                "--pod-name",
                f"bench-{index}",
                "--max-num-seqs",
                "64",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        stack.callback(process.wait, 10)
        stack.callback(process.terminate)
        urls.append(f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 30
    for url in urls:
        while True:
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"sim at {url} did not start") from None
                time.sleep(0.1)
    return urls


def body(index: int) -> dict[str, object]:
    return {"model": "fake-llm", "prompt": f"benchmark request {index}", "max_tokens": 4}


async def with_engine(urls: list[str], requests: int, concurrency: int) -> float:
    share = concurrency // len(urls) or 1
    start = time.perf_counter()
    async with AsyncExitStack() as engines:
        opened = [await engines.enter_async_context(Engine(url, concurrency=share)) for url in urls]
        batches = [[body(i) for i in range(n, requests, len(urls))] for n in range(len(urls))]
        results = await asyncio.gather(
            *(e.post_many("/v1/completions", b) for e, b in zip(opened, batches, strict=True))
        )
    elapsed = time.perf_counter() - start
    assert all(o.ok for batch in results for o in batch), "a request failed"
    return elapsed


async def plain_httpx(urls: list[str], requests: int, concurrency: int) -> float:
    share = concurrency // len(urls) or 1
    start = time.perf_counter()
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency)) as client:
        slots = [asyncio.Semaphore(share) for _ in urls]

        async def one(index: int) -> int:
            which = index % len(urls)
            async with slots[which]:
                response = await client.post(f"{urls[which]}/v1/completions", json=body(index))
                response.json()
                return response.status_code

        statuses = await asyncio.gather(*(one(i) for i in range(requests)))
    elapsed = time.perf_counter() - start
    assert all(status == 200 for status in statuses), "a request failed"
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with ExitStack() as stack:
        urls = start_sims(stack, 3)
        asyncio.run(plain_httpx(urls, 60, args.concurrency))  # warm up connections and the sims
        engine_times, plain_times = [], []
        for _ in range(args.rounds):
            plain_times.append(asyncio.run(plain_httpx(urls, args.requests, args.concurrency)))
            engine_times.append(asyncio.run(with_engine(urls, args.requests, args.concurrency)))
    engine, plain = statistics.median(engine_times), statistics.median(plain_times)
    print(f"{args.requests} completions to 3 sims, concurrency {args.concurrency}, median of {args.rounds} rounds")
    print(f"plain httpx loop : {args.requests / plain:8.1f} req/s  ({plain:.2f} s)")
    print(f"verify engine    : {args.requests / engine:8.1f} req/s  ({engine:.2f} s)")
    ratio = engine / plain
    print(f"engine time / plain time = {ratio:.2f}x (goal <= 1.30x: {'met' if ratio <= 1.3 else 'MISSED'})")


if __name__ == "__main__":
    main()
