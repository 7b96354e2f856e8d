"""``lorareg push`` of a ~200 MB adapter to S3 (moto's HTTP server), whole command, against a
plain boto3 ``upload_file`` process of the same files, in the same run; and the re-push of
the unchanged folder.

    .venv/bin/python bench/transfer/bench_push_cli.py [--mb 200] [--rounds 3]

Each round: the boto3 process (its own bucket key), a first ``lorareg push`` (a fresh
catalog, bucket prefix and cache, so every byte is hashed and sent), then the same push
again (unchanged: the hash index answers, nothing is sent). Medians over the rounds.
Goals: push ratio (boto3 s / lorareg s) >= 1.0; re-push <= 0.5 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.transfer.bench_transfer import make_adapter  # noqa: E402
from tests.fixtures.s3 import free_port  # noqa: E402

BOTO3 = """
import sys, boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=sys.argv[1], config=Config(s3={"addressing_style": "path"}))
for i, path in enumerate(sys.argv[3:]):
    s3.upload_file(path, "baseline", f"{sys.argv[2]}/{i}")
"""


CPU: dict[str, list[float]] = {"boto3": [], "push": [], "re-push": []}


def wall(cmd: list[str], env: dict[str, str], what: str) -> float:
    """The command's wall time; its CPU time (user + system) goes to ``CPU[what]``: on a
    machine where moto's server and the client share two cores, the client's CPU is what
    it takes from the server."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True)
    took = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU[what].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed: {proc.stderr.decode()[-2000:]}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lorareg-push-bench-"))
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AWS_ACCESS_KEY_ID": "bench",
           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
           "LORAREG_S3_ENDPOINT_URL": endpoint, "LORAREG_AUTHOR": "bench"}  # fmt: skip
    env.pop("LORAREG_URL", None)
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        import boto3
        from botocore.config import Config

        for _ in range(100):
            try:
                boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                             aws_access_key_id="bench", aws_secret_access_key="bench",
                             config=Config(s3={"addressing_style": "path"})).create_bucket(
                    Bucket="baseline")  # fmt: skip
                break
            except Exception:
                time.sleep(0.1)
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="bench", aws_secret_access_key="bench")  # fmt: skip
        s3.create_bucket(Bucket="lorareg")
        folder = make_adapter(work / "adapter", args.mb, 0)
        files = sorted(str(p) for p in folder.iterdir())
        size = sum(os.path.getsize(p) for p in files)
        print(f"adapter: {len(files)} files, {size / 1e6:.0f} MB")
        time.sleep(2.5)  # older than the index's racy window, as a trained adapter is
        base, first, again = [], [], []
        for r in range(args.rounds):
            base.append(
                wall([sys.executable, "-c", BOTO3, endpoint, f"r{r}", *files], env, "boto3")
            )
            run_env = {**env, "LORAREG_HOME": str(work / f"home{r}"),
                       "LORAREG_CACHE_DIR": str(work / f"cache{r}"),
                       "LORAREG_STORAGE_URL": f"s3://lorareg/r{r}"}  # fmt: skip
            push = [sys.executable, "-m", "cli.main", "push", str(folder), "bench/adapter"]
            first.append(wall(push, run_env, "push"))
            again.append(wall(push, run_env, "re-push"))
            print(f"round {r + 1}: boto3 {base[-1]:.2f} s, push {first[-1]:.2f} s,"
                  f" re-push {again[-1]:.2f} s", flush=True)  # fmt: skip
        b, f, a = (statistics.median(x) for x in (base, first, again))
        print(f"\nmedians: boto3 upload_file process {b:.2f} s ({size / 1e6 / b:.0f} MB/s)")
        print(
            f"lorareg push {f:.2f} s ({size / 1e6 / f:.0f} MB/s)  ratio {b / f:.2f} (goal >= 1.0)"
        )
        print(f"re-push unchanged {a:.2f} s (goal <= 0.5 s)")
        cpu = ", ".join(f"{k} {statistics.median(v):.2f} s" for k, v in CPU.items())
        print(f"CPU (user + system) medians: {cpu}")
    finally:
        moto.terminate()
        moto.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
