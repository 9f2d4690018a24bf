"""Benchmark: `igwlab load` beside inference-perf 0.7.0 (the load tool of the kubernetes-sigs
inference projects), against the same `igwlab sim` processes on 127.0.0.1.

For each target rate, each tool sends streamed completions (64-word prompts, 16 output tokens
unless --output-tokens says otherwise) for a bounded stage, the two taking turns first (the order
rotates every rate and round). Printed per tool and rate, medians over the rounds:

- achieved rate (requests/s over the send window) and whether it held 95% of the target;
- send lag p99 (actual - intended send time; inference-perf calls it schedule delay);
- CPU per 1000 requests: the tool's whole process tree (os.wait4), less a one-request run of the
  same tool, so start-up and report writing are not charged to the requests;
- latency error: the tool's total-latency p50 (and mean) less the sims' own server-side p50
  (and mean) over the same run — what the client adds to what it reports. The server side is
  the handler's time; a request that waits for a busy sim to read it is not in it, so when the
  sims saturate (server p50 well above TTFT + (tokens - 1) x ITL) the error grows with the load a
  tool really sent, and says more about the machine than about the client.

The sims are `igwlab sim` apps run by this script (`serve-sim`), several processes sharing one
port (SO_REUSEPORT) so they do not become the bottleneck; each also listens on a control port
of its own with the server-side truth: every completion's handler time and the TCP connections
it saw.

inference-perf wants Python >= 3.12, so it lives in a virtualenv of its own, `.venv-inference-perf`
beside this repository's `.venv` (made on first use with `pip install inference-perf==0.7.0`).
The interpreter for it: $INFERENCE_PERF_PYTHON if set, else pyenv's newest 3.12 or later
(`pyenv latest`), else `python3.12` / `python3.13` on PATH. Its tokenizer is a word-level one this
script builds in a temporary directory (nothing is fetched from a model hub).

Bounded: every run has a timeout, and every process is stopped at the end.

    python benchmarks/bench_load.py [--rates 100,200,300,400,450,500] [--duration 10] [--rounds 2]
        [--sims 2] [--ttft-ms 50] [--itl-ms 5] [--output-tokens 16] [--tools igwlab,inference-perf]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
INFERENCE_PERF = "inference-perf==0.7.0"
PROMPT_WORDS = 64
MODEL = "fake-llm"


# --- the sims --------------------------------------------------------------------------------


def serve_sim(port: int, control_port: int, ttft_ms: float, itl_ms: float) -> None:
    """One sim process: the `igwlab sim` app on the shared port, plus a timing middleware and a
    control port with the server-side truth."""
    import asyncio

    from aiohttp import web

    from igwlab.sim import SimConfig
    from igwlab.sim.server import PORT_KEY, build_app

    latencies: list[float] = []
    peers: set[Any] = set()

    @web.middleware
    async def timing(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.transport is not None:
            peers.add(request.transport.get_extra_info("peername"))
        start = time.perf_counter()
        try:
            return await handler(request)  # type: ignore[no-any-return]
        finally:
            if request.path == "/v1/completions":
                latencies.append(time.perf_counter() - start)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"latencies": latencies, "connections": len(peers)})

    async def reset(request: web.Request) -> web.Response:
        latencies.clear()
        peers.clear()
        return web.json_response({})

    config = SimConfig(
        port=port,
        pod_name=f"bench-{control_port}",
        time_to_first_token_ms=ttft_ms,
        inter_token_latency_ms=itl_ms,
        max_num_seqs=1000,
        max_model_len=4096,
    )

    async def main() -> None:
        app = build_app(config)
        app.middlewares.append(timing)
        app[PORT_KEY].append(port)
        control = web.Application()
        control.router.add_get("/bench/stats", stats)
        control.router.add_post("/bench/reset", reset)
        runners = []
        for application, site_port, reuse in ((app, port, True), (control, control_port, False)):
            runner = web.AppRunner(application, access_log=None, handle_signals=False)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", site_port, reuse_port=reuse).start()
            runners.append(runner)
        try:
            await asyncio.Event().wait()
        finally:
            for runner in runners:
                await runner.cleanup()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Sims:
    url: str
    controls: list[str]

    def reset(self) -> None:
        for control in self.controls:
            httpx.post(f"{control}/bench/reset", timeout=10)

    def truth(self) -> tuple[list[float], int]:
        latencies: list[float] = []
        connections = 0
        for control in self.controls:
            data = httpx.get(f"{control}/bench/stats", timeout=30).json()
            latencies += data["latencies"]
            connections += data["connections"]
        return latencies, connections


def start_sims(stack: ExitStack, count: int, ttft_ms: float, itl_ms: float) -> Sims:
    port = free_port()
    controls = []
    for _ in range(count):
        control = free_port()
        process = subprocess.Popen(
            [sys.executable, __file__, "serve-sim", str(port), str(control), str(ttft_ms), str(itl_ms)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        stack.callback(_stop, process)
        controls.append(f"http://127.0.0.1:{control}")
    deadline = time.monotonic() + 60
    for control in controls:
        while True:
            try:
                httpx.get(f"{control}/bench/stats", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise SystemExit("the sims did not start") from None
                time.sleep(0.1)
    return Sims(url=f"http://127.0.0.1:{port}", controls=controls)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


# --- running a tool --------------------------------------------------------------------------


def run_measured(
    argv: list[str], timeout_s: float, env: dict[str, str], cwd: Path | None = None, stdout: Path | None = None
) -> tuple[int, float]:
    """Run argv to its end (killed after timeout_s); its exit code and the CPU seconds of its whole
    process tree (user + system, children it waited for included)."""
    with open(stdout or os.devnull, "wb") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.PIPE, env=env, cwd=cwd)
    killer = threading.Timer(timeout_s, process.kill)
    killer.start()
    assert process.stderr is not None
    errors = threading.Thread(target=lambda: _tail(process.stderr), daemon=True)  # type: ignore[arg-type]
    errors.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        killer.cancel()
    process.returncode = os.waitstatus_to_exitcode(status)
    errors.join(timeout=5)
    return process.returncode, usage.ru_utime + usage.ru_stime


_last_stderr: list[str] = []


def _tail(stream: Any) -> None:
    _last_stderr.clear()
    for line in stream:
        _last_stderr.append(line.decode(errors="replace").rstrip())
        del _last_stderr[:-20]


@dataclass
class Run:
    tool: str
    target: float
    requests: int
    failed: int
    achieved_rps: float
    lag_p99_s: float
    latency_p50_s: float
    latency_mean_s: float
    cpu_s: float
    truth_p50_s: float
    truth_mean_s: float
    server_connections: int
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Tool:
    name: str
    run: Callable[..., tuple[int, float, dict[str, Any]]]
    """(rate, seconds, scratch dir, workers=None) -> (exit code, CPU seconds, figures). `workers` pins
    igwlab's worker processes (its baseline runs match each run's count); inference-perf always
    runs one worker per CPU."""


def igwlab_tool(url: str, env: dict[str, str], output_tokens: int) -> Tool:
    def run(
        rate: float, seconds: float, scratch: Path, workers: int | None = None
    ) -> tuple[int, float, dict[str, Any]]:
        argv = [
            sys.executable, "-m", "igwlab", "load", "--url", url, "--model", MODEL, "--rps", f"{rate:g}",
            "--duration", f"{seconds:g}s", "--prompt-tokens", str(PROMPT_WORDS), "--max-tokens", str(output_tokens),
            "--timeout", "30", "--json",
        ]  # fmt: skip
        if workers is not None:
            argv += ["--workers", str(workers)]
        output = scratch / "igwlab.json"
        code, cpu = run_measured(argv, seconds + 120, env, stdout=output)
        if code != 0:
            return code, cpu, {}
        (stage,) = json.loads(output.read_text())["data"]["stages"]
        return (
            code,
            cpu,
            {
                "requests": stage["requests"],
                "failed": stage["requests"] - stage["succeeded"],
                "achieved_rps": stage["pacing"]["achieved_rps"],
                "lag_p99_s": stage["pacing"]["send_lag_s"]["p99"],
                "latency_p50_s": stage["latency_s"]["p50"],
                "latency_mean_s": stage["latency_s"]["mean"],
                "workers": stage["workers"],
                "connections": stage["connections_opened"],
            },
        )

    return Tool("igwlab", run)


def find_python312() -> str:
    explicit = os.environ.get("INFERENCE_PERF_PYTHON")
    if explicit:
        return explicit
    pyenv = shutil.which("pyenv")
    if pyenv:
        for series in ("3.13", "3.12"):
            latest = subprocess.run([pyenv, "latest", "-q", series], capture_output=True, text=True, timeout=30)
            if latest.returncode == 0 and latest.stdout.strip():
                prefix = subprocess.run(
                    [pyenv, "prefix", latest.stdout.strip()], capture_output=True, text=True, timeout=30
                )
                candidate = Path(prefix.stdout.strip()) / "bin" / "python"
                if prefix.returncode == 0 and candidate.exists():
                    return str(candidate)
    for name in ("python3.13", "python3.12"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit(
        "inference-perf needs Python 3.12 or later: set INFERENCE_PERF_PYTHON to one, or install it with pyenv"
    )


def inference_perf_venv() -> Path:
    venv = ROOT / ".venv-inference-perf"
    binary = venv / "bin" / "inference-perf"
    if not binary.exists():
        python = find_python312()
        print(f"making {venv.name} with {python} and installing {INFERENCE_PERF} ...", flush=True)
        subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=300)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", INFERENCE_PERF], check=True, timeout=1800)
    return venv


TOKENIZER_SCRIPT = """
import sys
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast
vocab = {"[UNK]": 0, **{f"w{i}": i + 1 for i in range(1000)}}
tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
tokenizer.decoder = decoders.WordPiece(prefix="##")
fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", model_max_length=4096)
fast.save_pretrained(sys.argv[1])
"""


def inference_perf_tool(url: str, env: dict[str, str], scratch_root: Path, output_tokens: int) -> Tool:
    venv = inference_perf_venv()
    tokenizer = scratch_root / "tokenizer"
    subprocess.run(
        [str(venv / "bin" / "python"), "-c", TOKENIZER_SCRIPT, str(tokenizer)],
        check=True, timeout=300, capture_output=True,
    )  # fmt: skip

    def run(
        rate: float, seconds: float, scratch: Path, workers: int | None = None
    ) -> tuple[int, float, dict[str, Any]]:
        out = scratch / "inference-perf"
        config = scratch / "inference-perf.yaml"
        words = {"min": PROMPT_WORDS, "max": PROMPT_WORDS, "mean": PROMPT_WORDS, "std_dev": 0, "type": "fixed"}
        tokens = {"min": output_tokens, "max": output_tokens, "mean": output_tokens, "std_dev": 0, "type": "fixed"}
        settings = {
            "api": {"type": "completion", "streaming": True},
            "data": {"type": "random", "input_distribution": words, "output_distribution": tokens},
            "load": {
                "type": "constant",
                "stages": [{"rate": rate, "duration": max(1, round(seconds))}],
                "request_timeout": 30,
            },
            "server": {"type": "vllm", "model_name": MODEL, "base_url": url, "ignore_eos": True},
            "tokenizer": {"pretrained_model_name_or_path": str(tokenizer)},
            "storage": {"local_storage": {"path": str(out)}},
        }
        config.write_text(yaml.safe_dump(settings))
        code, cpu = run_measured([str(venv / "bin" / "inference-perf"), "-c", str(config)], seconds + 300, env, scratch)
        reports = list(out.glob("stage_0_lifecycle_metrics.json"))
        if code != 0 or not reports:
            return code or 1, cpu, {}
        stage = json.loads(reports[0].read_text())
        load, successes = stage["load_summary"], stage["successes"]
        failed = (stage.get("failures") or {}).get("count", 0)
        return (
            code,
            cpu,
            {
                "requests": load["count"],
                "failed": failed,
                "achieved_rps": load["achieved_rate"],
                "lag_p99_s": load["schedule_delay"]["p99"],
                "latency_p50_s": successes["latency"]["request_latency"]["median"],
                "latency_mean_s": successes["latency"]["request_latency"]["mean"],
            },
        )

    return Tool("inference-perf", run)


def measure(tool: Tool, sims: Sims, rate: float, seconds: float, scratch: Path) -> Run | None:
    sims.reset()
    code, cpu, figures = tool.run(rate, seconds, scratch)
    truth, connections = sims.truth()
    if code != 0 or not figures:
        print(f"  {tool.name} at {rate:g} req/s failed (exit {code}): " + " | ".join(_last_stderr[-3:]), flush=True)
        return None
    return Run(
        tool=tool.name,
        target=rate,
        requests=figures["requests"],
        failed=figures["failed"],
        achieved_rps=figures["achieved_rps"],
        lag_p99_s=figures["lag_p99_s"],
        latency_p50_s=figures["latency_p50_s"],
        latency_mean_s=figures["latency_mean_s"],
        cpu_s=cpu,
        truth_p50_s=statistics.median(truth) if truth else float("nan"),
        truth_mean_s=statistics.fmean(truth) if truth else float("nan"),
        server_connections=connections,
        extra={k: v for k, v in figures.items() if k in ("workers", "connections")},
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve-sim":
        port, control, ttft, itl = sys.argv[2:6]
        serve_sim(int(port), int(control), float(ttft), float(itl))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="100,200,300,400,450,500")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sims", type=int, default=2, help="sim processes sharing the port")
    parser.add_argument("--ttft-ms", type=float, default=50.0)
    parser.add_argument("--itl-ms", type=float, default=5.0)
    parser.add_argument("--output-tokens", type=int, default=16, help="max_tokens of every request")
    parser.add_argument("--tools", default="igwlab,inference-perf")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    wanted = args.tools.split(",")

    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        scratch_root = Path(tmp)
        env = {**os.environ, "IGWLAB_STATE_DIR": str(scratch_root / "state"), "PYTHONUNBUFFERED": "1"}
        sims = start_sims(stack, args.sims, args.ttft_ms, args.itl_ms)
        tools = []
        if "igwlab" in wanted:
            tools.append(igwlab_tool(sims.url, env, args.output_tokens))
        if "inference-perf" in wanted:
            tools.append(inference_perf_tool(sims.url, env, scratch_root, args.output_tokens))
        print(
            f"sims: {args.sims} processes at {sims.url}, TTFT {args.ttft_ms:g} ms + {args.output_tokens - 1} x "
            f"{args.itl_ms:g} ms; {args.duration:g}s per run, {args.rounds} rounds; {os.cpu_count()} CPUs",
            flush=True,
        )
        runs: list[Run] = []
        turn = 0
        for round_number in range(args.rounds):
            for rate in rates:
                order = tools[turn % len(tools) :] + tools[: turn % len(tools)]
                turn += 1
                for tool in order:
                    scratch = scratch_root / f"r{round_number}-{rate:g}-{tool.name}"
                    scratch.mkdir()
                    run = measure(tool, sims, rate, args.duration, scratch)
                    if run:
                        runs.append(run)
                        print(
                            f"  round {round_number + 1} {tool.name:>14} @ {rate:>5g}: achieved {run.achieved_rps:7.1f}"
                            f"  lag p99 {run.lag_p99_s * 1000:7.1f} ms  p50 {run.latency_p50_s * 1000:6.1f} ms"
                            f" (server {run.truth_p50_s * 1000:6.1f})  failed {run.failed}  CPU {run.cpu_s:.1f}s"
                            f"  server-side connections {run.server_connections}",
                            flush=True,
                        )
        baseline: dict[tuple[str, int | None], float] = {}
        for tool in tools:  # start-up, warm-up and report: a one-request run with as many workers
            for workers in sorted({r.extra.get("workers") for r in runs if r.tool == tool.name}, key=str):
                scratch = scratch_root / f"base-{tool.name}-{workers}"
                scratch.mkdir()
                code, cpu, _ = tool.run(1, 1, scratch, workers=workers)
                baseline[tool.name, workers] = cpu if code == 0 else 0.0
                many = f" with {workers} worker processes" if workers else ""
                print(f"{tool.name}: a one-request run{many} costs {cpu:.2f} CPU s", flush=True)
        report(runs, rates, tools, baseline)


def report(
    runs: list[Run], rates: list[float], tools: list[Tool], baseline: dict[tuple[str, int | None], float]
) -> None:
    print()
    print(
        f"{'tool':>14} {'target':>6} {'achieved':>9} {'held':>5} {'lag p99':>9} {'CPU/1000 req':>13}"
        f" {'p50 error':>10} {'mean error':>11} {'server p50':>11} {'failed':>7} {'TCP conns':>9}"
    )
    sustained: dict[str, float] = {}
    for rate in rates:
        for tool in tools:
            mine = [r for r in runs if r.tool == tool.name and r.target == rate]
            if not mine:
                print(f"{tool.name:>14} {rate:>6g}  (no successful run)")
                continue

            def median(get: Callable[[Run], float], runs: list[Run] = mine) -> float:
                return statistics.median(get(r) for r in runs)

            achieved = median(lambda r: r.achieved_rps)
            held = achieved >= 0.95 * rate
            if held:
                sustained[tool.name] = max(sustained.get(tool.name, 0.0), rate)
            cpu_per_1000 = median(
                lambda r: (r.cpu_s - baseline[r.tool, r.extra.get("workers")]) / max(1, r.requests - 1) * 1000
            )
            print(
                f"{tool.name:>14} {rate:>6g} {achieved:>9.1f} {'yes' if held else 'NO':>5}"
                f" {median(lambda r: r.lag_p99_s) * 1000:>6.1f} ms {cpu_per_1000:>9.2f} s"
                f" {median(lambda r: r.latency_p50_s - r.truth_p50_s) * 1000:>+7.1f} ms"
                f" {median(lambda r: r.latency_mean_s - r.truth_mean_s) * 1000:>+8.1f} ms"
                f" {median(lambda r: r.truth_p50_s) * 1000:>8.1f} ms"
                f" {median(lambda r: r.failed):>7.0f} {median(lambda r: r.server_connections):>9.0f}"
            )
    print()
    for tool in tools:
        print(f"{tool.name}: highest target held at >= 95%: {sustained.get(tool.name, 0):g} req/s")
    print(
        "lag p99: actual - intended send time; p50/mean error: the tool's total latency less the sims' "
        "server-side time over the same run; CPU: the tool's process tree, less a one-request run with as "
        "many worker processes."
    )


if __name__ == "__main__":
    main()
