"""`igwlab load`: the pacing report and metrics arithmetic with exact numbers, and real runs over
HTTP on 127.0.0.1 against `igwlab sim` (stages, --out files, connection reuse, worker processes).

No test asserts on timing: how fast the client is belongs to benchmarks/bench_load.py.
"""

from __future__ import annotations

import asyncio
import json
from array import array
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from fakegw import GatewayBehaviour, running_gateway
from helpers import envelope, invoke, json_data
from typer.testing import CliRunner

from igwlab.errors import Interrupted, UsageError
from igwlab.observe import metrics
from igwlab.observe.metrics import RequestRecord, parse_slo, percentile, summarize
from igwlab.observe.pacing import arrival_offsets, lag_limit_s, pacing_report
from igwlab.observe.report import stage_schema
from igwlab.sim import SimConfig, running_sim
from igwlab.sim.process import BackgroundServer
from igwlab.sim.server import PORT_KEY, build_app
from igwlab.verify.engine import Engine

# --- pacing ----------------------------------------------------------------------------------


def test_constant_arrivals_are_evenly_spaced_within_the_stage() -> None:
    assert list(arrival_offsets(4, 1.0, "constant", seed=1)) == [0.0, 0.25, 0.5, 0.75]
    assert list(arrival_offsets(3, 1.0, "constant", seed=1)) == [0.0, 1 / 3, 2 / 3]


def test_poisson_arrivals_repeat_with_the_seed_and_keep_the_mean_rate() -> None:
    first = list(arrival_offsets(100, 100.0, "poisson", seed=42))
    assert first == list(arrival_offsets(100, 100.0, "poisson", seed=42))
    assert first != list(arrival_offsets(100, 100.0, "poisson", seed=43))
    assert first[0] == 0.0 and all(b > a for a, b in pairwise(first))
    assert 9_700 <= len(first) <= 10_300  # 10 000 expected; the seed makes this exact every run
    gaps = [b - a for a, b in pairwise(first)]
    assert max(gaps) > 5 * min(gaps)  # exponential gaps, not a grid


def test_lag_limit_is_ten_ms_or_half_the_interval() -> None:
    assert lag_limit_s(10) == 0.05
    assert lag_limit_s(100) == 0.01
    assert lag_limit_s(400) == 0.01


def test_pacing_report_on_a_perfect_schedule() -> None:
    intended = [k / 10 for k in range(10)]
    report = pacing_report(intended, intended, target_rps=10)
    assert report.sent == 10
    assert report.send_window_s == pytest.approx(0.9)
    assert report.achieved_rps == pytest.approx(10.0)
    assert report.send_lag is not None and report.send_lag.p99 == 0.0 and report.send_lag.max == 0.0
    assert report.lag_limit_s == 0.05 and report.trustworthy and report.warning is None


def test_pacing_report_flags_a_client_that_sent_late() -> None:
    intended = [k / 100 for k in range(100)]
    lags = [0.0] * 98 + [0.05, 0.2]
    report = pacing_report([i + lag for i, lag in zip(intended, lags, strict=True)], intended, target_rps=100)
    assert report.send_lag is not None
    assert report.send_lag.p50 == 0.0
    assert report.send_lag.p99 == pytest.approx(0.05 + 0.01 * 0.15)  # 99th of 100: between the last two
    assert report.send_lag.max == pytest.approx(0.2)
    assert report.send_window_s == pytest.approx(1.19)
    assert report.achieved_rps == pytest.approx(99 / 1.19)
    assert not report.trustworthy
    assert report.warning is not None
    assert "51.5 ms is above 10.0 ms" in report.warning and "not trustworthy" in report.warning


def test_pacing_report_allows_half_an_interval_at_low_rates() -> None:
    intended = [k / 10 for k in range(10)]
    report = pacing_report([i + 0.03 for i in intended], intended, target_rps=10)
    assert report.send_lag is not None and report.send_lag.p99 == pytest.approx(0.03)
    assert report.trustworthy and report.warning is None


def test_pacing_report_in_closed_loop_and_with_skips() -> None:
    closed = pacing_report([0.0, 0.5, 1.0, 2.0])
    assert closed.send_lag is None and closed.lag_limit_s is None and closed.trustworthy
    assert closed.achieved_rps == pytest.approx(1.5)
    skipped = pacing_report([0.0, 0.1], [0.0, 0.1], target_rps=10, skipped=3)
    assert skipped.trustworthy and skipped.warning is not None and skipped.warning.startswith("3 scheduled requests")
    empty = pacing_report([], [], target_rps=10, skipped=5)
    assert empty.sent == 0 and empty.achieved_rps is None and empty.send_window_s is None


# --- metrics arithmetic ----------------------------------------------------------------------


def test_percentiles_interpolate_between_ranks() -> None:
    summary = summarize(range(1, 102))
    assert summary is not None
    assert (summary.count, summary.mean, summary.p50, summary.p90, summary.p99, summary.max) == (
        101,
        51,
        51,
        91,
        100,
        101,
    )
    assert percentile([1.0, 2.0], 50) == 1.5
    assert percentile([0.0, 10.0, 20.0, 30.0], 90) == pytest.approx(27.0)
    assert summarize([]) is None


def record(
    sent: float = 0.0,
    latency: float = 1.0,
    tokens: tuple[float, ...] = (),
    output: int | None = None,
    status: int = 200,
    **extra: Any,
) -> RequestRecord:
    return RequestRecord(
        index=0,
        prefix="unique",
        klass="critical",
        sent_s=sent,
        status=status,
        latency_s=latency,
        token_times_s=array("d", tokens),
        output_tokens=len(tokens) if output is None else output,
        **extra,
    )


def test_ttft_itl_and_tpot_of_one_request() -> None:
    one = record(latency=0.4, tokens=(0.1, 0.15, 0.2, 0.3))
    assert one.ttft_s == 0.1
    assert one.itl_s == pytest.approx([0.05, 0.05, 0.1])
    assert one.tpot_s == pytest.approx(0.2 / 3)
    # The server's usage report counts 5 tokens in those 4 chunks: TPOT spreads over 4 gaps.
    assert record(tokens=(0.1, 0.15, 0.2, 0.3), output=5, usage_reported=True).tpot_s == pytest.approx(0.05)
    assert record(tokens=(0.1,)).tpot_s is None and record().ttft_s is None


def test_stage_latencies_pool_every_gap_and_skip_failures() -> None:
    records = [
        record(latency=0.3, tokens=(0.1, 0.2, 0.3)),
        record(latency=0.5, tokens=(0.2, 0.3, 0.5)),
        record(latency=9.0, tokens=(5.0, 9.0), status=503),
    ]
    stage = metrics.latencies(records)
    assert stage.total is not None and stage.total.count == 2 and stage.total.mean == pytest.approx(0.4)
    assert stage.ttft is not None and stage.ttft.p50 == pytest.approx(0.15)
    assert stage.itl is not None and stage.itl.count == 4 and stage.itl.max == pytest.approx(0.2)
    assert stage.tpot is not None and stage.tpot.p50 == pytest.approx(0.125)  # (0.1 and 0.15)


def test_throughput_counts_output_tokens_over_the_stage_span() -> None:
    records = [
        record(sent=0.0, latency=1.0, tokens=(0.5,), output=10, usage_reported=True),
        record(sent=1.0, latency=1.0, tokens=(0.5,), output=6),
        record(sent=1.5, latency=0.1, status=500, output=99),
    ]
    result = metrics.throughput(records)
    assert result.span_s == 2.0
    assert result.output_tokens == 16 and result.output_tokens_per_s == 8.0
    assert result.requests_per_s == 1.0 and result.usage_reported == 1


def test_goodput_counts_requests_within_every_objective() -> None:
    objectives = {"ttft": 0.2, "tpot": 0.05}
    records = [
        record(sent=0.0, latency=0.5, tokens=(0.1, 0.14, 0.18)),  # ttft 0.1, tpot 0.04: good
        record(sent=1.0, latency=0.5, tokens=(0.3, 0.34)),  # ttft too slow
        record(sent=2.0, latency=0.5, tokens=(0.1, 0.3)),  # tpot 0.2: too slow
        record(sent=3.0, latency=1.0, status=429),  # failed: never good
    ]
    result = metrics.goodput(records, objectives, span_s=4.0)
    assert result.good == 1 and result.requests == 4 and result.share == 0.25 and result.rps == 0.25
    assert result.met == {"ttft": 2, "tpot": 2}
    no_stream = metrics.goodput([record(latency=0.1)], {"ttft": 1.0, "e2e": 0.5}, span_s=1.0)
    assert no_stream.good == 0 and no_stream.met == {"ttft": 0, "e2e": 1}
    assert metrics.goodput([record(tokens=(0.1, 0.2, 0.9))], {"itl": 0.5}, 1.0).met == {"itl": 0}


def test_slo_parsing() -> None:
    assert parse_slo("ttft=200ms,tpot=50ms") == {"ttft": 0.2, "tpot": 0.05}
    assert parse_slo(" e2e = 2s , itl=0.5s ") == {"e2e": 2.0, "itl": 0.5}
    for bad in ("ttft=200", "speed=1s", "ttft=0ms", "", "ttft"):
        with pytest.raises(UsageError):
            parse_slo(bad)


# --- real runs against igwlab sim ------------------------------------------------------------


@contextmanager
def prefix_gateway(replicas: int = 3) -> Iterator[str]:
    with ExitStack() as stack:
        urls = [
            stack.enter_context(
                running_sim(SimConfig(port=0, pod_name=f"kv-{i}", enable_kvcache=True, time_to_first_token_ms=5))
            ).url
            for i in range(replicas)
        ]
        with running_gateway(GatewayBehaviour(backends=urls, pick="prefix")) as gateway:
            yield gateway.url


class CountedSim:
    """A real `igwlab sim` app plus a middleware that remembers each TCP connection it served
    (by the client's address and port) — the server-side count of connects."""

    def __init__(self, config: SimConfig) -> None:
        self.peers: set[Any] = set()
        self.requests = 0

        @web.middleware
        async def count(request: web.Request, handler: Any) -> web.StreamResponse:
            assert request.transport is not None
            self.peers.add(request.transport.get_extra_info("peername"))
            self.requests += 1
            return await handler(request)  # type: ignore[no-any-return]

        def build() -> web.Application:
            app = build_app(config)
            app.middlewares.append(count)
            return app

        self.server = BackgroundServer(build)

    def __enter__(self) -> CountedSim:
        self.server.start()
        assert self.server.app is not None
        self.server.app[PORT_KEY].append(self.server.port)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    @property
    def url(self) -> str:
        return self.server.url


def run_load(cli: CliRunner, url: str, *args: str) -> tuple[int, dict[str, Any]]:
    """Exit code and the envelope's data (the report, also when no request succeeded)."""
    result = invoke(cli, "load", "--lab", "kv-cache-aware", "--url", url, "--json", *args)
    data = json_data(result, "load")
    return result.exit_code, (data if data is not None else {"stderr": result.stderr})


def test_closed_loop_load_reports_latency_and_prefix_pods(cli: CliRunner) -> None:
    with prefix_gateway() as url:
        code, report = run_load(
            cli, url, "--concurrency", "6", "--duration", "1.5s", "--prefixes", "3", "--prompt-tokens", "64"
        )
    assert code == 0, report
    (stage,) = report["stages"]
    assert stage["requests"] > 20 and stage["succeeded"] == stage["requests"]
    assert stage["target"] == {"concurrency": 6} and stage["pacing"]["send_lag_s"] is None
    assert set(stage["per_prefix"]) == {"prefix-0", "prefix-1", "prefix-2"}
    assert all(p["top_pod_share"] == 1.0 for p in stage["per_prefix"].values())
    assert stage["ttft_s"]["p50"] is not None and stage["latency_s"]["p99"] >= stage["latency_s"]["p50"]


def test_rate_stages_send_exactly_their_schedules(cli: CliRunner) -> None:
    with prefix_gateway() as url:
        code, report = run_load(
            cli, url, "--rps", "20,40", "--duration", "1s", "--sheddable", "0.5", "--workers", "1", "--seed", "3"
        )
    assert code == 0, report
    assert [s["target"] for s in report["stages"]] == [
        {"rps": 20, "arrival": "constant"},
        {"rps": 40, "arrival": "constant"},
    ]
    assert [s["requests"] for s in report["stages"]] == [20, 40]
    assert report["requests"] == 60 and report["succeeded"] == 60
    for stage in report["stages"]:
        pacing = stage["pacing"]
        assert pacing["sent"] == stage["requests"] and pacing["skipped_client_saturated"] == 0
        assert pacing["send_lag_s"]["count"] == stage["requests"]
        assert pacing["achieved_rps"] > 0 and pacing["lag_limit_s"] == pytest.approx(
            max(0.01, 0.5 / stage["target"]["rps"])
        )
        classes = stage["by_class"]
        assert set(classes) == {"critical", "sheddable"}
        # Spread evenly (a Weyl sequence), not by chance: half and half within 10% of the stage.
        assert abs(classes["critical"]["requests"] - classes["sheddable"]["requests"]) <= stage["requests"] // 10
        assert sum(c["outcomes"]["200"] for c in classes.values()) == stage["requests"]
        assert stage["per_prefix"].keys() == {"unique"}
        # The sim honours stream_options.include_usage: 16 tokens, reported by the server.
        assert stage["throughput"]["usage_reported"] == stage["requests"]
        assert stage["throughput"]["output_tokens"] == 16 * stage["requests"]
        assert stage["itl_s"]["count"] == 15 * stage["requests"] and stage["tpot_s"]["count"] == stage["requests"]


def test_poisson_stage_follows_the_seeded_schedule(cli: CliRunner) -> None:
    with running_sim(SimConfig(port=0, pod_name="solo")) as sim:
        code, report = run_load(
            cli, sim.url, "--rps", "50", "--arrival", "poisson", "--seed", "7", "--duration", "1s", "--max-tokens", "2"
        )
    assert code == 0, report
    (stage,) = report["stages"]
    expected = list(arrival_offsets(50, 1.0, "poisson", seed=7 + 1))  # each stage: seed + its number
    assert report["seed"] == 7 and stage["target"]["arrival"] == "poisson"
    assert stage["requests"] == len(expected)


def test_goodput_and_counted_chunks_without_usage(cli: CliRunner) -> None:
    with running_sim(SimConfig(port=0, pod_name="solo", inter_token_latency_ms=1)) as sim:
        code, report = run_load(
            cli, sim.url, "--rps", "20", "--duration", "0.5s", "--max-tokens", "4", "--no-usage",
            "--slo", "ttft=10s,tpot=10s,e2e=1ms",
        )  # fmt: skip
    assert code == 0, report
    (stage,) = report["stages"]
    assert stage["throughput"]["usage_reported"] == 0 and stage["throughput"]["output_tokens"] == 4 * 10
    goodput = stage["goodput"]
    assert goodput["objectives_s"] == {"ttft": 10.0, "tpot": 10.0, "e2e": 0.001}
    assert goodput["met"]["ttft"] == 10 and goodput["met"]["e2e"] == 0  # at least 3 x 1 ms of token gaps
    assert goodput["good"] == 0 and goodput["share"] == 0
    assert report["slo_s"] == goodput["objectives_s"]


def test_connections_are_reused_across_requests(cli: CliRunner) -> None:
    with CountedSim(SimConfig(port=0, pod_name="counted", max_num_seqs=8)) as sim:
        code, report = run_load(cli, sim.url, "--concurrency", "4", "--duration", "1s", "--max-tokens", "4")
    assert code == 0, report
    (stage,) = report["stages"]
    assert stage["requests"] >= 20 and stage["succeeded"] == stage["requests"]
    # Warm-up and stage together never open more connections than requests may be in flight.
    assert len(sim.peers) <= 4, f"{len(sim.peers)} TCP connections for {sim.requests} requests"
    assert stage["connections_opened"] <= 4


def test_worker_processes_share_one_schedule(cli: CliRunner) -> None:
    with CountedSim(SimConfig(port=0, pod_name="counted", max_num_seqs=64)) as sim:
        code, report = run_load(cli, sim.url, "--rps", "40", "--duration", "1s", "--workers", "2", "--max-tokens", "2")
    assert code == 0, report
    (stage,) = report["stages"]
    assert report["workers"] == 2 and stage["workers"] == 2
    assert stage["requests"] == 40 and stage["succeeded"] == 40
    assert stage["pacing"]["send_lag_s"]["count"] == 40
    # 40 requests and the two workers' warm-ups over fewer connections: they were reused.
    assert sim.requests >= 40 and len(sim.peers) < sim.requests


def test_verify_engine_reuses_its_connection_for_streams() -> None:
    async def streams(url: str) -> list[bool]:
        async with Engine(url, concurrency=1) as engine:
            body = {"model": "fake-llm", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
            return [(await engine.stream("/v1/chat/completions", body)).stream_done for _ in range(5)]

    with CountedSim(SimConfig(port=0, pod_name="counted")) as sim:
        done = asyncio.run(streams(sim.url))
    assert done == [True] * 5
    assert sim.requests == 5 and len(sim.peers) == 1


def test_out_writes_a_json_file_per_stage_and_a_plot(cli: CliRunner, tmp_path: Path) -> None:
    import jsonschema
    from matplotlib import image

    out = tmp_path / "results"
    with prefix_gateway() as plain:
        url = plain.replace("http://", "http://***@")  # what the files may show of the URL given
        given = plain.replace("http://", "http://user:s3cret@")  # credentials never reach the files
        result = invoke(
            cli, "load", "--lab", "kv-cache-aware", "--url", given, "--rps", "10,20", "--duration", "0.5s",
            "--prefixes", "2", "--slo", "ttft=1s", "--out", str(out),
        )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert not [p.name for p in out.iterdir() if b"s3cret" in p.read_bytes()]
    assert sorted(p.name for p in out.iterdir()) == ["load.png", "stage-1-rps-10.json", "stage-2-rps-20.json"]
    schema = stage_schema()
    for name, rps in (("stage-1-rps-10.json", 10), ("stage-2-rps-20.json", 20)):
        stage = json.loads((out / name).read_text())
        jsonschema.validate(stage, schema)
        assert stage["target"]["rps"] == rps and stage["run"]["url"] == url and stage["goodput"]["objectives_s"]
    pixels = image.imread(out / "load.png")
    assert pixels.shape[0] >= 300 and pixels.shape[1] >= 600
    # The text report: a section per stage and the table across stages.
    assert "stage 1/2" in result.stdout and "stage 2/2" in result.stdout and "goodput" in result.stdout
    assert "which pods served each prefix" in result.stdout and "wrote" in result.stderr


def test_json_stages_match_the_schema_too(cli: CliRunner) -> None:
    import jsonschema

    with running_sim(SimConfig(port=0, pod_name="solo")) as sim:
        code, report = run_load(cli, sim.url, "--concurrency", "2,3", "--duration", "0.3s", "--no-stream")
    assert code == 0, report
    schema = stage_schema()
    for stage in report["stages"]:
        jsonschema.validate(stage, schema)
        assert stage["ttft_s"] is None and stage["latency_s"]["count"] == stage["succeeded"]
    assert [s["target"] for s in report["stages"]] == [{"concurrency": 2}, {"concurrency": 3}]


def test_load_says_when_nothing_answers(cli: CliRunner) -> None:
    result = invoke(cli, "load", "--url", "http://127.0.0.1:9", "--rps", "5", "--duration", "1s")
    assert result.exit_code == 1
    assert "nothing answers at http://127.0.0.1:9" in result.stderr and "next:" in result.stderr


def test_no_request_succeeding_fails_with_the_figures(cli: CliRunner) -> None:
    with running_sim(SimConfig(port=0, pod_name="solo")) as sim:
        result = invoke(
            cli, "load", "--url", sim.url, "--rps", "10,20", "--duration", "0.5s", "--model", "no-such-model", "--json"
        )
    assert result.exit_code == 1
    failed = envelope(result, "load")
    assert failed["error"]["code"] == "checks-failed" and "no request succeeded: 15 sent" in failed["error"]["message"]
    first, second = failed["data"]["stages"]
    assert first["status"] == {"404": 5} and second["status"] == {"404": 10} and first["succeeded"] == 0
    assert "does not exist" in first["errors"]["404"]
    assert first["latency_s"] is None and first["throughput"]["output_tokens"] == 0


def test_failures_are_counted_beside_successes(cli: CliRunner) -> None:
    with CountedSim(SimConfig(port=0, pod_name="solo", max_num_seqs=1, max_waiting_queue_length=1)) as sim:
        code, report = run_load(cli, sim.url, "--concurrency", "4", "--duration", "0.5s", "--max-tokens", "2")
    assert code == 0, report
    (stage,) = report["stages"]
    assert stage["succeeded"] > 0 and stage["status"]["429"] > 0
    assert stage["succeeded"] + stage["status"]["429"] == stage["requests"]
    assert "queue is full" in stage["errors"]["429"]
    assert stage["latency_s"]["count"] == stage["succeeded"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rps", "5", "--concurrency", "2"], "either --rps or --concurrency"),
        (["--duration", "1s"], "either --rps or --concurrency"),
        (["--rps", "5000", "--duration", "1s"], "at most 1000"),
        (["--rps", "10,abc"], "'abc' is not a number"),
        (["--concurrency", "2.5"], "not a whole number"),
        (["--concurrency", "2", "--duration", "2h"], "at most 1800s"),
        (["--rps", "10,20", "--duration", "20m"], "minutes in all"),
        (["--concurrency", "2", "--duration", "soon"], "not a duration"),
        (["--rps", "5", "--slo", "ttft=200"], "not a time with a unit"),
        (["--rps", "5", "--no-stream", "--slo", "ttft=1s"], "needs streamed answers"),
    ],
)
def test_load_refuses_unbounded_or_ambiguous_requests(cli: CliRunner, args: list[str], message: str) -> None:
    result = invoke(cli, "load", "--url", "http://127.0.0.1:9", *args)
    assert result.exit_code == 2 and "error:" in result.stderr
    assert message in result.stderr


def test_out_must_be_a_directory(cli: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("")
    result = invoke(cli, "load", "--url", "http://127.0.0.1:9", "--rps", "5", "--out", str(target))
    assert result.exit_code == 2 and "is a file" in result.stderr


def test_interrupting_a_multi_process_run_leaves_no_worker_behind() -> None:
    import multiprocessing

    from igwlab.observe.load import LoadOptions
    from igwlab.observe.load import run_load as run

    def interrupt(message: str) -> None:
        if message.startswith("stage 2/"):
            raise KeyboardInterrupt  # what Ctrl-C raises in the parent, between two stages

    options = LoadOptions(url="", model="fake-llm", duration_s=0.3, rps=(20, 20), workers=2, max_tokens=2)
    with running_sim(SimConfig(port=0, pod_name="solo")) as sim, pytest.raises(Interrupted) as caught:
        run(replace(options, url=sim.url), progress=interrupt)
    assert multiprocessing.active_children() == []
    assert len(caught.value.data["stages"]) == 1  # the finished stage's figures are kept


@pytest.mark.parametrize("json_mode", [False, True], ids=["text", "json"])
def test_ctrl_c_names_load_and_keeps_the_finished_stages(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch, json_mode: bool
) -> None:
    from igwlab.cli import load_view

    said = load_view.progress

    def interrupt(message: str) -> None:
        if message.startswith("stage 2/"):
            raise KeyboardInterrupt  # what Ctrl-C raises between two stages
        said(message)

    monkeypatch.setattr(load_view, "progress", interrupt)
    with running_sim(SimConfig(port=0, pod_name="solo")) as sim:
        args = ["--url", sim.url, "--rps", "20,20", "--duration", "0.3s", "--workers", "1", "--max-tokens", "2"]
        result = invoke(cli, "load", *args, *(["--json"] if json_mode else []))
    assert result.exit_code == 130, result.stderr
    hint = " ".join(result.stderr.split())
    assert "igwlab load" in hint and "igwlab up" not in hint, hint
    if json_mode:
        document = envelope(result)
        assert document["error"]["code"] == "interrupted"
        [stage] = document["data"]["stages"]
        assert stage["requests"] > 0


@pytest.mark.parametrize("command", [["verify", "--url", "http://127.0.0.1:9"], ["teardown", "--yes"]])
def test_ctrl_c_anywhere_names_the_command_that_was_interrupted(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    import igwlab.verify.run
    from igwlab import state

    def interrupt(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(igwlab.verify.run, "verify", interrupt)
    monkeypatch.setattr(state, "read_current_lab", interrupt)
    result = invoke(cli, *command)
    assert result.exit_code == 130
    hint = " ".join(result.stderr.split())
    assert f"run `igwlab {command[0]}" in hint and "igwlab up" not in hint, hint


def test_requests_that_time_out_are_named_as_timeouts_with_the_flag_to_raise(cli: CliRunner) -> None:
    with running_sim(SimConfig(port=0, time_to_first_token_ms=3000)) as sim:
        result = invoke(cli, "load", "--url", sim.url, "--rps", "2", "--duration", "1s", "--timeout", "0.5")
    message = " ".join(result.stderr.split())
    assert result.exit_code == 1, message
    assert "nothing answers" not in message and "timed out" in message and "--timeout 0.5s" in message, message
    assert "raise --timeout" in message, message


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model", "no-such-model"], ["does not know model 'no-such-model'", "The model `no-such-model` does not"]),
        (["--prompt-tokens", "2000"], ["HTTP 400", "maximum context length is 1024 tokens", "--prompt-tokens"]),
    ],
    ids=["404", "400"],
)
def test_a_run_the_server_refused_names_the_cause_in_its_words(
    cli: CliRunner, args: list[str], expected: list[str]
) -> None:
    with running_sim(SimConfig(port=0, time_to_first_token_ms=0, inter_token_latency_ms=0)) as sim:
        result = invoke(cli, "load", "--url", sim.url, "--rps", "5", "--duration", "0.5s", "--max-tokens", "2", *args)
    message = " ".join(result.stderr.split())
    assert result.exit_code == 1, message
    assert all(part in message for part in expected), message
    assert "igwlab verify" not in message, message


@pytest.mark.parametrize("workers", ["1", "2"])
def test_load_says_what_it_waits_for_while_requests_drain(cli: CliRunner, workers: str) -> None:
    """After --duration, requests still in flight are waited for: progress says how many and for how long at most."""
    with running_sim(SimConfig(port=0, time_to_first_token_ms=3000, inter_token_latency_ms=0)) as sim:
        args = ["--rps", "4", "--duration", "0.3s", "--max-tokens", "1", "--timeout", "30", "--workers", workers]
        result = invoke(cli, "load", "--url", sim.url, *args)
    assert result.exit_code == 0, result.stderr
    progress = " ".join(result.stderr.split())
    assert "stage 1/1: sending stopped; " in progress and "still in flight, waiting at most" in progress, progress
    assert "(each ends within --timeout 30s)" in progress, progress


def test_stopping_closed_loop_load_ends_with_the_interruption_and_no_asyncio_traceback(tmp_path: Path) -> None:
    """SIGTERM (as Ctrl-C) while requests are in flight: the requests failing as their connections close
    must not surface as asyncio's "exception was never retrieved" tracebacks after igwlab's own message."""
    import os
    import signal
    import subprocess
    import sys
    import time

    with running_sim(SimConfig(port=0, pod_name="solo")) as sim:
        process = subprocess.Popen(
            [sys.executable, "-m", "igwlab", "load", "--url", sim.url, "--concurrency", "2", "--duration", "60s"],
            env={**os.environ, "IGWLAB_STATE_DIR": str(tmp_path)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stderr is not None
            lines: list[str] = []
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not any("in flight for 60s" in line for line in lines):
                lines.append(process.stderr.readline())
            time.sleep(2)  # not a wait on an event: requests must be under way when the signal lands
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=120) == 130
            said = "".join(lines) + process.stderr.read()
        finally:
            if process.poll() is None:
                process.kill()
    assert "interrupted after 0 of 1 stage" in said, said
    assert "Traceback" not in said and "never retrieved" not in said, said
