#!/usr/bin/env python3
"""`make bench`'s off-site peers: upload and fetch of one large export by the plugin's off-site
functions against boto3 and rclone, on the same local S3 server, in the same run.

Usage: bench_offsite.py SERVER EXPORT ROUNDS BENCH_OFFSITE RECIPIENT_FILE IDENTITY_FILE WORKDIR
  SERVER          s3s-fs or rclone (`rclone serve s3`): started here on 127.0.0.1, a free port
  EXPORT          the export tarball to transfer (its name an export name)
  ROUNDS          interleaved rounds; each round runs every tool once, in a rotated order
  BENCH_OFFSITE   the example binary that calls guard_core's offsite::upload / offsite::fetch
                  (the functions the NIF's jobs call)
Tools: emqx_guard (plain), emqx_guard + age, boto3 upload_file/download_file (default transfer
settings: 8 MiB parts, 10 threads), rclone copyto (its defaults: 5 MiB chunks, 4 upload
streams, 4 download streams above 256 MiB). Every tool uses its own key prefix; objects and
fetched files are deleted after each round. Times are medians; ratios are to the best peer
(boto3 or rclone) of the same server. Peak RSS is the VmHWM of the process that transfers
(GNU time's maximum resident set size). A benchmark, not a test: nothing here passes or fails.
"""
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

AK = "guard-bench-access"
SK = "guard-bench-SECRET/key+0123456789"
BUCKET = "backups"

BOTO3 = r"""
import sys, time, boto3
from botocore.config import Config
op, endpoint, key, path = sys.argv[1:5]
# rclone serve s3 returns the whole object's stored checksum on ranged GETs, which botocore's
# default response validation refuses: validate only where required, as on both servers alike.
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=sys.argv[5],
                  aws_secret_access_key=sys.argv[6], region_name="us-east-1",
                  config=Config(s3={"addressing_style": "path"},
                                response_checksum_validation="when_required"))
t0 = time.perf_counter()
if op == "upload":
    s3.upload_file(path, "backups", key)
else:
    s3.download_file("backups", key, path)
print("seconds=%.3f" % (time.perf_counter() - t0))
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(kind, root):
    os.makedirs(os.path.join(root, BUCKET), exist_ok=True)
    port = free_port()
    if kind == "s3s-fs":
        exe = os.environ.get("S3S_FS") or shutil.which("s3s-fs") or os.path.expanduser("~/.cargo/bin/s3s-fs")
        cmd = [exe, "--host", "127.0.0.1", "--port", str(port), "--access-key", AK, "--secret-key", SK, root]
    else:
        cmd = ["rclone", "serve", "s3", "--addr", "127.0.0.1:%d" % port, "--auth-key", "%s,%s" % (AK, SK), root]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return proc, "http://127.0.0.1:%d" % port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("%s did not start" % kind)


def timed(cmd, env=None):
    """Runs cmd under GNU time: (seconds it printed or wall seconds, peak RSS KiB)."""
    t0 = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-f", "MAXRSS %M"] + cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit("failed: %s\n%s%s" % (" ".join(cmd[:3]), out.stdout, out.stderr))
    rss = int([l for l in out.stderr.splitlines() if l.startswith("MAXRSS ")][-1].split()[1])
    secs = wall
    for word in out.stdout.split():
        if word.startswith("seconds="):
            secs = float(word.split("=", 1)[1])
    return secs, rss


def rclone_env(endpoint):
    env = dict(os.environ)
    env.update({
        "RCLONE_CONFIG_BENCH_TYPE": "s3", "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
        "RCLONE_CONFIG_BENCH_ENDPOINT": endpoint, "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": AK,
        "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": SK, "RCLONE_CONFIG_BENCH_REGION": "us-east-1",
        "RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE": "true", "RCLONE_CONFIG": "/dev/null",
    })
    return env


def tools(endpoint, export, name, recipient, identity, dest, bench, r):
    """tool -> (upload command, fetch command, env) of round r: each tool under its own key prefix
    r<r>-<tool>/ (never a key the server saw deleted), each fetch into dest/<prefix>/."""
    guard = [bench, "upload", endpoint, BUCKET, AK, SK, export]
    p = lambda tool: "r%d-%s" % (r, tool)
    fetch = lambda tool: [bench, "fetch", endpoint, BUCKET, AK, SK, name, os.path.join(dest, p(tool)), "prefix=" + p(tool)]
    py = [sys.executable, "-c", BOTO3]
    return {
        "emqx_guard": (guard + ["prefix=" + p("guard")], fetch("guard"), None),
        "emqx_guard+age": (guard + ["prefix=" + p("guard-age"), "recipient=" + recipient],
                           fetch("guard-age") + ["identity=" + identity], None),
        "boto3": (py + ["upload", endpoint, p("boto3") + "/" + name, export, AK, SK],
                  py + ["fetch", endpoint, p("boto3") + "/" + name, os.path.join(dest, p("boto3"), name), AK, SK], None),
        "rclone": (["rclone", "copyto", export, "bench:%s/%s/%s" % (BUCKET, p("rclone"), name)],
                   ["rclone", "copyto", "bench:%s/%s/%s" % (BUCKET, p("rclone"), name),
                    os.path.join(dest, p("rclone"), name)],
                   rclone_env(endpoint)),
    }


def fetch_dir(tool, r):
    return "r%d-%s" % (r, {"emqx_guard": "guard", "emqx_guard+age": "guard-age"}.get(tool, tool))


def main():
    server, export, rounds, bench, recipient_file, identity_file, work = sys.argv[1:8]
    rounds = int(rounds)
    name = os.path.basename(export)
    recipient = open(recipient_file).read().strip()
    root = tempfile.mkdtemp(prefix="s3-", dir=work)
    dest = tempfile.mkdtemp(prefix="fetched-", dir=work)
    proc, endpoint = start_server(server, root)
    results = {}
    try:
        order = list(tools(endpoint, export, name, recipient, identity_file, dest, bench, 0))
        for r in range(rounds):
            table = tools(endpoint, export, name, recipient, identity_file, dest, bench, r)
            for tool in order[r % len(order):] + order[:r % len(order)]:
                up, down, env = table[tool]
                os.makedirs(os.path.join(dest, fetch_dir(tool, r)), exist_ok=True)
                results.setdefault((tool, "upload"), []).append(timed(up, env))
                results.setdefault((tool, "fetch"), []).append(timed(down, env))
                # the disk space back: this round's objects and files
                shutil.rmtree(os.path.join(root, BUCKET, fetch_dir(tool, r)), ignore_errors=True)
                shutil.rmtree(os.path.join(dest, fetch_dir(tool, r)), ignore_errors=True)
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(dest, ignore_errors=True)
    size = os.path.getsize(export) / 1048576
    for op in ("upload", "fetch"):
        med = {t: statistics.median(s for s, _ in results[(t, op)]) for t in order}
        rss = {t: max(m for _, m in results[(t, op)]) for t in order}
        best = min(("boto3", "rclone"), key=lambda t: med[t])
        for t in order:
            extra = ""
            if t == "emqx_guard+age":
                extra = "  age/plain %.2fx" % (med[t] / med["emqx_guard"])
            print("%s %-7s %-15s %7.3f s %7.1f MiB/s  %5.2fx best peer (%s)  peak RSS %6.1f MiB%s" % (
                server, op, t, med[t], size / med[t], med[t] / med[best], best, rss[t] / 1024, extra))


if __name__ == "__main__":
    main()
