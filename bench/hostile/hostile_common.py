"""Helpers shared by the hostile-client benchmarks in bench/hostile/: tokens from the node's
binary, bytes Redis sent, a process's resident memory, and the run's timing and quantiles."""
import asyncio, os, subprocess, time


def token(binary, secret, sub):
    """An HS256 token for user `sub`, minted by `chorus token` with the node's secret."""
    env = dict(os.environ, JWT_SECRET=secret)
    return subprocess.check_output([binary, "token", "--sub", sub, "--ttl", "1h"], env=env).decode().strip()


def redis_out(port):
    """Bytes the Redis on `port` has sent to its clients (`total_net_output_bytes`)."""
    info = subprocess.check_output(["redis-cli", "-p", str(port), "info", "stats"]).decode()
    return int([l for l in info.splitlines() if l.startswith("total_net_output_bytes")][0].split(":")[1])


def rss(pid):
    """Resident memory of process `pid`, MiB."""
    with open(f"/proc/{pid}/status") as f:
        return int([l for l in f if l.startswith("VmRSS")][0].split()[1]) // 1024


async def peak_rss(pid, seconds, every):
    """Samples `pid`'s resident memory every `every` s for `seconds` s; the peak, MiB."""
    peak, start = 0, time.time()
    while time.time() - start < seconds:
        await asyncio.sleep(every)
        peak = max(peak, rss(pid))
    return peak


def quantile(sorted_values, p):
    """The `p` quantile (0 to 1) of sorted values; NaN when there are none."""
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(p * len(sorted_values)))]
