"""Helpers shared by the hostile-client benchmarks in bench/hostile/: tokens from the node's
binary, bytes Redis sent, and a process's resident memory."""
import os, subprocess


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
