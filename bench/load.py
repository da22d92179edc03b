"""Load test: the real server, signed Twilio webhooks, replies through a fake Twilio.

    python bench/load.py [--rates 100,300,500] [--seconds 10]
    python bench/load.py --postgres temp --instances 2     (a throw-away PostgreSQL cluster)
    python bench/load.py --postgres postgresql+asyncpg://user@host/db --instances 2

It starts `tawasul serve` (SQLite by default) with WhatsApp through a local fake of Twilio's
API, then beneficiaries write at fixed arrival rates, one rate after the other (open loop:
a message leaves at its time whatever the server is doing). The messages mix questions of
the knowledge base and the steps of a form. For each rate it prints the messages
acknowledged per second, the acknowledgement latency (webhook answered) and the reply
latency (message sent until the fake Twilio received its first reply), p50 and p99, how much
further behind the replies fell from the rate's first quarter to its last ("behind": a server
that does not keep up falls behind the longer the rate lasts), and the CPU time per message
of the server (its child processes included) and of this load generator with its fake Twilio,
which share the machine with it. Before each rate, a bare loop
of durable one-row inserts into SQLite (WAL, synchronous=FULL, on the same disk) runs for a
second: the ratio of the two says how much of the machine's floor the whole system reaches,
and stays comparable from one machine to another. Latencies count from the moment a message
was due to leave.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import tomllib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from bot.channels.twilio import INBOUND_PATH  # noqa: E402
from tests.conftest import run_cli  # noqa: E402
from tests.faults.conftest import Server, twilio_env  # noqa: E402
from tests.twilio.conftest import PUBLIC_URL, sign, twilio_form  # noqa: E402
from tests.twilio.fake import FakeTwilio  # noqa: E402

FAQ_FILE = ROOT / "conversations" / "data" / "faq.toml"
FAQ = "<faq>"  # a place in the script for a question of the knowledge base
# What the bot says when it hands a conversation to staff (after which it is silent).
HANDED_TO_STAFF = tuple(
    tomllib.loads((ROOT / "conversations" / "data" / "catalog" / f"{lang}.toml").read_text())[
        "handoff"
    ][key][:30]
    for lang in ("ar", "en")
    for key in ("queued", "misunderstood", "out_of_hours")
)
# One beneficiary's messages, taken in a loop from a random place: questions, the menu,
# and the volunteer form (start, consent, name, mobile, skip the email, city).
SCRIPT = [
    "السلام عليكم",
    FAQ,
    "٥",
    "١",
    "محمد عبدالله",
    "0501234567",
    "تخطي",
    "الرياض",
    "القائمة",
    FAQ,
    FAQ,
]
# A rate is not kept when its last quarter's replies came this much later than its first's.
BEHIND_LIMIT = 0.25
# Each beneficiary writes at most this often, well under the flood guard's limits.
MIN_SPACING_SECONDS = 2.0
# Loaded by the server's interpreter when --profile is given: cProfile from start to exit.
PROFILER = """
import cProfile, os, signal
_profile = cProfile.Profile()
_profile.enable()
def _stop(*_):
    _profile.dump_stats(os.environ["TAWASUL_BENCH_PROFILE"])
    os._exit(0)
# uvicorn hands SIGTERM back to this handler once it has shut down.
signal.signal(signal.SIGTERM, _stop)
"""


class TimedTwilio(FakeTwilio):
    """The fake Twilio, telling the driver when each message reached it."""

    def __init__(self, on_message: Any) -> None:
        super().__init__()
        self.on_message = on_message

    async def _create(self, request: web.Request) -> web.Response:
        response = await super()._create(request)
        if response.status == 201:
            sent = self.messages[-1]
            self.on_message(
                sent["To"].removeprefix("whatsapp:"), sent.get("Body", ""), time.monotonic()
            )
            self.messages.clear()  # the driver keeps what it needs
        return response


@dataclass
class Beneficiary:
    number: str
    position: int
    awaiting: deque[tuple[float, int]] = field(default_factory=deque)
    with_staff: bool = False  # handed to staff: the bot stays silent, so they write no more


@dataclass
class Step:
    rate: int
    seconds: float
    sent: int = 0
    acked: int = 0
    errors: int = 0
    ack: list[float] = field(default_factory=list)
    reply: list[float] = field(default_factory=list)
    # For each reply, when its message was due, from the step's start.
    reply_due: list[float] = field(default_factory=list)
    lateness: list[float] = field(default_factory=list)
    last_ack: float = 0.0
    started: float = 0.0
    cpu: float = 0.0
    driver_cpu: float = 0.0  # this process's: the beneficiaries and the fake Twilio
    baseline: float = 0.0
    loop: float = 0.0  # the first server's busiest thread, share of a core while sending
    handed_over: int = 0  # sent before the bot handed the conversation to staff (no reply)

    def achieved(self) -> float:
        span = max(self.last_ack - self.started, self.seconds)
        return self.acked / span if span else 0.0

    def falling_behind(self) -> float:
        """How much later the replies to the step's last quarter came than those to its first
        (median against median): a server that does not keep up falls further behind the
        longer the rate lasts, which a short step's percentiles can hide."""
        quarter = self.seconds / 4
        first = [r for r, d in zip(self.reply, self.reply_due, strict=True) if d < quarter]
        last = [r for r, d in zip(self.reply, self.reply_due, strict=True) if d >= 3 * quarter]
        if not first or not last:
            return float("inf")
        return statistics.median(last) - statistics.median(first)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def faq_questions() -> list[str]:
    data = tomllib.loads(FAQ_FILE.read_text("utf-8"))
    questions: list[str] = []
    for entry in data["faq"]:
        questions += entry["questions"]["ar"][:4] + entry["questions"]["en"][:1]
    return questions


def sqlite_baseline(directory: Path, seconds: float = 1.0) -> float:
    """Durable one-row commits a second: the floor any SQLite system stands on here."""
    path = directory / "baseline.db"
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body TEXT)")
    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        connection.execute("BEGIN")
        connection.execute("INSERT INTO t (body) VALUES (?)", ("مرحبا " * 8,))
        connection.execute("COMMIT")
        count += 1
    elapsed = time.perf_counter() - started
    connection.close()
    return count / elapsed


def stages(path: Path) -> dict[str, list[float]]:
    """Inside the server, from its own records: stored until processed, queued until sent."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        processed = connection.execute(
            "SELECT (julianday(processed_at) - julianday(created_at)) * 86400 FROM messages"
            " WHERE direction = 'in' AND processed_at IS NOT NULL"
        )
        sent = connection.execute(
            "SELECT (julianday(o.sent_at) - julianday(m.created_at)) * 86400"
            " FROM outbox o JOIN messages m ON m.id = o.message_id WHERE o.sent_at IS NOT NULL"
        )
        return {
            "stored -> processed": [row[0] for row in processed],
            "queued reply -> sent": [row[0] for row in sent],
        }
    finally:
        connection.close()


def family(pid: int) -> list[int]:
    """The process and its descendants (Linux): a server may run work in a child process."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:  # it ended meanwhile
            continue
    return found


def cpu_seconds(pid: int) -> float:
    """CPU time of the process and of its live child processes."""
    total = 0.0
    for member in family(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks
    return total


@dataclass
class Memory:
    """The peaks of a server's memory (its child processes included), in MB, each taken on
    its own: all of it, pages shared with another process split between them (proportional
    set size), and its anonymous memory, what no file on disk backs (the heap, thread
    stacks, arrays; the rest is files mapped read-only, above all the sentence model, which
    the kernel shares and may drop and read again). ``anonymous`` is None on kernels that
    do not tell it (before Linux 5.7)."""

    pss: float = 0.0
    anonymous: float | None = 0.0

    def update(self, other: Memory) -> None:
        self.pss = max(self.pss, other.pss)
        if self.anonymous is None or other.anonymous is None:
            self.anonymous = None
        else:
            self.anonymous = max(self.anonymous, other.anonymous)


def memory(pid: int) -> Memory:
    """The process's and its child processes' memory now (a forked child's copy of the
    model counts once)."""
    found: dict[str, int] = {}
    for member in family(pid):
        try:
            text = Path(f"/proc/{member}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            name = line.split(maxsplit=1)[0]
            if name in ("Pss:", "Pss_Anon:"):
                found[name] = found.get(name, 0) + int(line.split()[1])
    anonymous = found.get("Pss_Anon:")
    return Memory(found.get("Pss:", 0) / 1024, None if anonymous is None else anonymous / 1024)


async def sample_memory(pids: list[int], peaks: list[Memory], stop: asyncio.Event) -> None:
    """Keep in ``peaks`` the highest ``memory`` of each server, read twice a second."""
    while not stop.is_set():
        now = await asyncio.to_thread(lambda: [memory(pid) for pid in pids])
        for peak, current in zip(peaks, now, strict=True):
            peak.update(current)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU time of each of the process's threads (Linux), by thread id."""
    times = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        times[task.name] = (int(fields[11]) + int(fields[12])) / 100
    return times


def busiest_thread(before: dict[str, float], after: dict[str, float], seconds: float) -> float:
    """The busiest thread's share of one core between two readings: for the server, its
    event loop, where every webhook, engine step and send runs (it cannot use more than 1)."""
    used = [after[t] - before.get(t, 0.0) for t in after]
    return max(used, default=0.0) / seconds if seconds > 0 else float("nan")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Driver:
    def __init__(self, bases: list[str], beneficiaries: int, novel: float, seed: int) -> None:
        self.bases = bases
        self.random = random.Random(seed)
        self.questions = faq_questions()
        self.novel = novel
        self.people = [
            Beneficiary(f"+9665{n:08d}", self.random.randrange(len(SCRIPT)))
            for n in range(beneficiaries)
        ]
        self.by_number = {p.number: p for p in self.people}
        self.steps: list[Step] = []
        self.next_person = 0
        self.serial = 0

    def replied(self, number: str, body: str, at: float) -> None:
        person = self.by_number.get(number)
        if person is None or not person.awaiting:
            return  # a second reply to the same message
        due, step = person.awaiting.popleft()
        self.steps[step].reply.append(at - due)
        self.steps[step].reply_due.append(due - self.steps[step].started)
        if any(words in body for words in HANDED_TO_STAFF):
            # Two questions not understood, and the conversation went to the staff queue,
            # where the bot answers nothing more: what this person sent since is not missed.
            person.with_staff = True
            for _, later in person.awaiting:
                self.steps[later].handed_over += 1
            person.awaiting.clear()

    def text_for(self, person: Beneficiary) -> str:
        text = SCRIPT[person.position % len(SCRIPT)]
        person.position += 1
        if text != FAQ:
            return text
        question = self.random.choice(self.questions)
        if self.random.random() < self.novel:
            # Worded as nobody wrote it before: no cached embedding helps.
            self.serial += 1
            question = f"{question} {self.serial}"
        return question

    async def send(self, http: aiohttp.ClientSession, step: Step, index: int, due: float) -> None:
        person = self.people[self.next_person % len(self.people)]
        self.next_person += 1
        for _ in range(len(self.people)):  # (if everybody went to staff, they write anyway)
            if not person.with_staff:
                break
            person = self.people[self.next_person % len(self.people)]
            self.next_person += 1
        form = twilio_form("whatsapp:" + person.number, self.text_for(person))
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": sign(PUBLIC_URL + INBOUND_PATH, form),
        }
        base = self.bases[index % len(self.bases)]
        person.awaiting.append((due, len(self.steps) - 1))
        step.lateness.append(time.monotonic() - due)
        ok = False
        for _ in range(2):  # a connection closed under us is tried again, as Twilio does
            try:
                async with http.post(
                    base + INBOUND_PATH, data=urlencode(form), headers=headers
                ) as response:
                    await response.read()
                    ok = response.status == 200
                break
            except aiohttp.ClientConnectionError:
                continue
            except (aiohttp.ClientError, TimeoutError):
                break
        now = time.monotonic()
        if ok:
            step.acked += 1
            step.ack.append(now - due)
            step.last_ack = max(step.last_ack, now)
        else:
            step.errors += 1

    async def run_step(self, http: aiohttp.ClientSession, rate: int, seconds: float) -> Step:
        step = Step(rate, seconds)
        self.steps.append(step)
        total = int(rate * seconds)
        step.started = start = time.monotonic() + 0.05
        tasks = []
        gc.disable()  # a full collection of the driver's heap would hold its sends up
        try:
            for index in range(total):
                due = start + index / rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(self.send(http, step, index, due)))
                step.sent += 1
            await asyncio.gather(*tasks)
        finally:
            gc.enable()
        return step

    async def drained(self, seconds: float) -> int:
        """Wait until every acknowledged message has its reply; the number still waiting."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not any(p.awaiting for p in self.people):
                return 0
            await asyncio.sleep(0.1)
        return sum(len(p.awaiting) for p in self.people)


async def start_servers(args: argparse.Namespace, fake: FakeTwilio, work: Path) -> list[Server]:
    env = twilio_env(fake)
    env.update(
        TAWASUL_LOGGING_LEVEL=args.log_level,
        TAWASUL_OUTBOX_POLL_SECONDS="0.5",
        TAWASUL_OUTBOX_CONCURRENCY=str(args.send_concurrency),
        TAWASUL_LOGGING_FORMAT="json",
    )
    url = args.database_url
    servers = []
    for n in range(args.instances):
        tmp = work / f"instance-{n}"
        tmp.mkdir()
        server = Server(tmp, env)
        if url:
            server.env["TAWASUL_DATABASE_URL"] = url
        else:  # every instance on the first one's file (one SQLite file, one writer)
            server.env["TAWASUL_DATABASE_URL"] = f"sqlite+aiosqlite:///{work / 'tawasul.db'}"
        paths = [args.checkout] if args.checkout else []
        if paths:
            server.env["PYTHONPATH"] = ":".join(paths)
        if n == 0:  # by the code that serves it: the other checkout may have other migrations
            await asyncio.to_thread(run_cli, tmp, "db", "upgrade", env=server.env)
        if args.profile:
            (tmp / "sitecustomize.py").write_text(PROFILER)
            paths.append(str(tmp))
            server.env["TAWASUL_BENCH_PROFILE"] = str(tmp / "server.prof")
        if paths:
            server.env["PYTHONPATH"] = ":".join(paths)
        await server.start()
        servers.append(server)
    return servers


def database_url(args: argparse.Namespace) -> tuple[str | None, Any]:
    if args.postgres is None:
        return None, None
    if args.postgres != "temp":
        return args.postgres, None
    from tests.pg.cluster import Cluster, wait_ready

    cluster = Cluster()
    cluster.start()
    wait_ready(cluster)
    return cluster.create_database("bench"), cluster


async def main(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="tawasul-load-"))
    args.database_url, cluster = database_url(args)
    rates = [int(r) for r in args.rates.split(",")]
    expected = int(sum(r * args.seconds for r in rates) / len(SCRIPT))
    people = args.beneficiaries or max(int(max(rates) * MIN_SPACING_SECONDS), expected)
    driver = Driver([], people, args.novel, args.seed)
    fake = TimedTwilio(driver.replied)
    await fake.start()
    servers = await start_servers(args, fake, work)
    driver.bases = [s.base for s in servers]
    pids = [s.proc.pid for s in servers if s.proc is not None]
    kind = "PostgreSQL" if args.database_url else "SQLite (WAL, synchronous=FULL)"
    print(f"server      tawasul serve x{len(servers)} on {kind}")
    print(f"load        {people} beneficiaries, rates {rates} msg/s, {args.seconds:g} s each")
    if cluster is not None:
        print("            (throw-away cluster of the test suite: fsync off, not durable)")
    connector = aiohttp.TCPConnector(limit=args.connections)
    timeout = aiohttp.ClientTimeout(total=30)
    memory_peaks, sampled = [Memory() for _ in pids], asyncio.Event()
    sampler = asyncio.create_task(sample_memory(pids, memory_peaks, sampled))
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            # Warm up: the first questions fill the embedding cache and the pools.
            await driver.run_step(http, 20, 1.0)
            await driver.drained(10)
            driver.steps.clear()
            for rate in rates:
                baseline = sqlite_baseline(work)  # A, then B: interleaved
                before = sum(cpu_seconds(pid) for pid in pids)
                threads, sending = thread_cpu_seconds(pids[0]), time.monotonic()
                driver_before = time.process_time()
                step = await driver.run_step(http, rate, args.seconds)
                step.loop = busiest_thread(
                    threads, thread_cpu_seconds(pids[0]), time.monotonic() - sending
                )
                left = await driver.drained(args.drain)
                step.cpu = sum(cpu_seconds(pid) for pid in pids) - before
                step.driver_cpu = time.process_time() - driver_before
                step.baseline = baseline
                report(step, left)
    finally:
        peaks = [peak_rss_mb(pid) for pid in pids]
        sampled.set()
        await sampler
        for server in servers:
            await server.terminate()
        await fake.stop()
        if cluster is not None:
            cluster.stop()
    summary(driver.steps, peaks, memory_peaks)
    if not args.database_url:
        for name, values in stages(work / "tawasul.db").items():
            print(
                f"{name:<40} p50 {pct(values, 0.5) * 1000:.0f} ms, "
                f"p99 {pct(values, 0.99) * 1000:.0f} ms (whole run)"
            )
    if args.profile:
        import pstats

        stats = pstats.Stats(str(work / "instance-0" / "server.prof"))
        print("\nwhere the server's time went (first instance, own time):")
        stats.sort_stats("tottime").print_stats(args.profile)


def report(step: Step, left: int) -> None:
    if not hasattr(report, "header"):
        report.header = True  # type: ignore[attr-defined]
        print()
        print(
            f"{'offered':>8} {'acked/s':>8} {'errors':>6} {'ack p50':>8} {'ack p99':>8} "
            f"{'reply p50':>9} {'reply p99':>9} {'no reply':>8} {'cpu/msg':>8} "
            f"{'behind':>7} {'late p99':>8} {'floor/s':>8} {'loop':>5} {'load cpu':>8}"
        )
    cpu_ms = step.cpu / step.acked * 1000 if step.acked else float("nan")
    driver_ms = step.driver_cpu / step.acked * 1000 if step.acked else float("nan")
    print(
        f"{step.rate:>8} {step.achieved():>8.0f} {step.errors:>6} "
        f"{pct(step.ack, 0.5) * 1000:>6.1f}ms {pct(step.ack, 0.99) * 1000:>6.1f}ms "
        f"{pct(step.reply, 0.5) * 1000:>7.1f}ms {pct(step.reply, 0.99) * 1000:>7.1f}ms "
        f"{left:>8} {cpu_ms:>6.2f}ms {step.falling_behind():>6.2f}s "
        f"{pct(step.lateness, 0.99) * 1000:>6.1f}ms "
        f"{step.baseline:>8.0f} {step.loop * 100:>4.0f}% {driver_ms:>6.2f}ms",
        flush=True,
    )


def summary(steps: list[Step], peaks: list[float], memory_peaks: list[Memory]) -> None:
    kept = [
        s
        for s in steps
        if s.errors == 0
        and s.achieved() >= 0.97 * s.rate
        and len(s.reply) >= 0.99 * (s.acked - s.handed_over)
        and pct(s.reply, 0.99) < 2.0
        and s.falling_behind() < BEHIND_LIMIT
    ]
    floor = statistics.median(s.baseline for s in steps)
    print()
    print(f"SQLite floor (durable one-row commits)   {floor:.0f}/s (median of {len(steps)})")
    if kept:
        best = max(kept, key=lambda s: s.rate)
        ratios = [s.achieved() / s.baseline for s in steps if s in kept]
        print(f"sustained end to end                     {best.achieved():.0f} msg/s")
        print(f"  at that rate: ack p99                  {pct(best.ack, 0.99) * 1000:.1f} ms")
        print(f"  at that rate: reply p99                {pct(best.reply, 0.99) * 1000:.1f} ms")
        print(
            f"  ratio to the floor                     {best.achieved() / best.baseline:.3f}"
            f" (median over kept rates {statistics.median(ratios):.3f})"
        )
    else:
        print("sustained end to end                     none of the rates was kept up")
    handed = sum(s.handed_over for s in steps)
    print(f"handed to staff, then silent             {handed} messages (not unanswered)")
    print(f"peak RSS of the server                   {', '.join(f'{p:.0f} MB' for p in peaks)}")
    print(
        "peak PSS, server and its children        "
        f"{', '.join(f'{p.pss:.0f} MB' for p in memory_peaks)} (read twice a second)"
    )
    anonymous = ", ".join(
        "unknown" if p.anonymous is None else f"{p.anonymous:.0f} MB" for p in memory_peaks
    )
    print(
        f"peak anonymous memory of the server      {anonymous} (its own: the rest is files"
        " mapped, the model's above all)"
    )
    print(
        "(kept = every message acknowledged and answered, reply p99 under 2 s, and the replies"
        f" not falling {BEHIND_LIMIT:g} s further behind from the step's first quarter to its"
        " last)"
    )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="100,250,400,550", help="messages/s, comma-separated")
    parser.add_argument(
        "--seconds",
        type=float,
        default=10.0,
        help="length of each rate (long enough for a server that falls behind to show it)",
    )
    parser.add_argument("--beneficiaries", type=int, default=0, help="default: from the rates")
    parser.add_argument(
        "--novel", type=float, default=0.2, help="share of questions worded anew (not cached)"
    )
    parser.add_argument("--postgres", help="a database URL, or 'temp' for a throw-away cluster")
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument(
        "--send-concurrency",
        type=int,
        default=16,
        help="the server's [outbox] concurrency (conversations sent to at once; default 16)",
    )
    parser.add_argument("--connections", type=int, default=256, help="client connections")
    parser.add_argument("--drain", type=float, default=15.0, help="seconds to wait for replies")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--checkout", help="serve the code of another checkout (to compare two versions)"
    )
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="print the server's N top functions"
    )
    args = parser.parse_args(argv)
    if args.checkout:
        args.checkout = str(Path(args.checkout).resolve())
    return args


if __name__ == "__main__":
    asyncio.run(main(parse()))
