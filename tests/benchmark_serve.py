"""Benchmark of the service (not a test): what the router and HTTP layer add to a prediction, and
requests per second of one uvicorn process.

    .venv/bin/python tests/benchmark_serve.py [--seconds 10] [--clients 8]

Builds the serving tests' registry (two versions of a tiny scikit-learn model) in a temporary
directory, then measures (1) the locked model's pyfunc predict on one row, called directly;
(2) the same through Service.predict (router, metrics, response), in-process; (3) POST
/v1/predict over loopback HTTP to `lockstep serve` in its own process, one client; (4) requests
per second with several client threads; (5) the in-process predict again with the inference log
on, and the log's record() call alone (what logging adds to a request). Prints one table.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))

from toolkit.serving import build_registry, deploy_params, frame


def percentiles(samples: list[float]) -> str:
    samples = sorted(samples)
    p = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))] * 1000  # noqa: E731
    return f"p50 {p(0.50):7.3f} ms   p99 {p(0.99):7.3f} ms   (n={len(samples)})"


def timed(call, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


BARE = """
import socket, sys
import mlflow.pyfunc, pandas as pd, uvicorn
from fastapi import Body, FastAPI

model = mlflow.pyfunc.load_model(sys.argv[1])
app = FastAPI()

@app.post("/v1/predict")
def predict(rows: list[dict] = Body(embed=True)) -> dict:
    return {"predictions": model.predict(pd.DataFrame(rows)).tolist()}

sock = socket.socket()
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
sock.bind(("127.0.0.1", 0))
sock.listen(128)
print(f"on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("-n", type=int, default=2000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="lockstep-bench-"))
    os.chdir(root)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    os.environ |= {"MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true", "LOCKSTEP_TEST_KEY": "x"}
    build_registry(root, uri)
    os.environ["MLFLOW_TRACKING_URI"] = uri
    params = deploy_params("http://127.0.0.1:9/v1")
    del params["prompts"], params["llm"]  # the tabular path only
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    bin_dir = Path(sys.executable).parent
    subprocess.run([bin_dir / "lockstep", "deploy", "lock"], check=True, capture_output=True)

    import pandas as pd

    from lockstep.config import load_params
    from lockstep.serve.client import Client
    from lockstep.serve.routing import route
    from lockstep.serve.server import build

    rows = [frame()[["f1", "f2"]].iloc[0].to_dict()]
    _, service = build(load_params(root / "params.yaml"))
    model = service.variants["stable"].model
    one = pd.DataFrame(rows)
    for _ in range(200):  # warm up
        model.predict(one)
        service.predict("stable", rows)
    direct = timed(lambda: model.predict(pd.DataFrame(rows)), args.n)
    in_process = timed(lambda: service.predict("stable", rows), args.n)
    routing = timed(lambda: route("bench", "user-42", 25.0), args.n)
    # The inference log: the same in-process predict with the log on, and its record() call alone
    from lockstep.inference_log import InferenceLog

    service.log = InferenceLog(root / "monitor" / "bench.db", queue_size=100_000)
    logged = timed(lambda: service.predict("stable", rows), args.n)
    record = timed(
        lambda: service.log.record(ts=time.time(), variant="stable", endpoint="predict", inputs=rows, outputs=[0]),
        args.n,
    )
    service.log.close()
    service.log = None

    # The baseline: a bare FastAPI app on uvicorn serving the same locked model, nothing else
    bare = subprocess.Popen(
        [sys.executable, "-c", BARE, service.variants["stable"].locked.model.uri], env=os.environ,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        client = Client(re.search(r"on (http://\S+)", bare.stdout.readline())[1])
        for _ in range(200):
            client.post("/v1/predict", {"rows": rows})
        baseline = timed(lambda: client.post("/v1/predict", {"rows": rows}, key="k"), args.n)
        client.close()
    finally:
        bare.terminate()
        bare.wait()

    # lockstep serve as deployed: validation, router, metrics, the inference log and the access log on
    params["monitor"] = {"log": "monitor/serve.db"}
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    env = {**os.environ, "PORT": "0", "HOST": "127.0.0.1"}
    server = subprocess.Popen(
        [bin_dir / "lockstep", "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        url = re.search(r"on (http://\S+)", server.stdout.readline())[1]
        client = Client(url)
        for _ in range(200):
            client.post("/v1/predict", {"rows": rows})
        http = timed(lambda: client.post("/v1/predict", {"rows": rows}, key="k"), args.n)
        done = [0] * args.clients
        stop = threading.Event()

        def load(i: int) -> None:
            c = Client(url)
            while not stop.is_set():
                c.post("/v1/predict", {"rows": rows}, key=f"k{done[i]}")
                done[i] += 1

        threads = [threading.Thread(target=load, args=(i,)) for i in range(args.clients)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        time.sleep(args.seconds)  # the measuring period itself, not synchronisation
        stop.set()
        for t in threads:
            t.join()
        rps = sum(done) / (time.perf_counter() - start)
    finally:
        server.terminate()
        server.wait()
    p50 = lambda xs: 1000 * sorted(xs)[len(xs) // 2]  # noqa: E731
    p99 = lambda xs: 1000 * sorted(xs)[int(0.99 * len(xs))]  # noqa: E731
    print(f"cores: {os.cpu_count()}")
    print(f"route() alone               {percentiles(routing)}")
    print(f"model.predict, direct       {percentiles(direct)}")
    print(f"Service.predict, in-process {percentiles(in_process)}")
    print(f"bare FastAPI + uvicorn      {percentiles(baseline)}")
    print(f"POST /v1/predict over HTTP  {percentiles(http)}   (lockstep serve, inference and access log on)")
    print(
        f"lockstep serve minus bare   p50 {p50(http) - p50(baseline):7.3f} ms   p99 {p99(http) - p99(baseline):7.3f} ms"
    )
    print(f"Service.predict, logged     {percentiles(logged)}")
    print(f"InferenceLog.record() alone {percentiles(record)}")
    for label, xs in (("added by router, in-process", in_process), ("added by HTTP + router     ", http)):
        print(f"{label} p50 {p50(xs) - p50(direct):7.3f} ms   p99 {p99(xs) - p99(direct):7.3f} ms")
    print(f"requests/s, 1 uvicorn process, {args.clients} client threads: {rps:.0f}")


if __name__ == "__main__":
    main()
