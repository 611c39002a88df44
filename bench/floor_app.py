"""The forwarding floor: a Serve app whose one FastAPI handler forwards the body to the upstream
with aiohttp and returns its bytes; no auth, no routing, no limits, no ledger. Whatever a
gateway on Serve adds beyond this is its own cost. Started in a child process, in the proxy
mode given by the environment (bench/switchboard_proc.py's MODES).

    python -m bench.floor_app --port 8600 --upstream http://127.0.0.1:9300/v1
"""

import argparse
import sys

import aiohttp
from fastapi import FastAPI, Request, Response  # module level: FastAPI resolves the annotations here

from bench.procs import wait_for_stop_signal


def build(upstream: str):  # type: ignore[no-untyped-def]
    from ray import serve

    api = FastAPI()

    @serve.deployment(name="floor", ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=256)
    @serve.ingress(api)
    class Floor:
        def __init__(self) -> None:
            self.session: aiohttp.ClientSession | None = None

        @api.post("/v1/chat/completions")
        async def chat(self, request: Request) -> Response:
            if self.session is None:
                self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
            body = await request.body()
            async with self.session.post(upstream + "/chat/completions", data=body,
                                         headers={"content-type": "application/json"}) as answer:
                return Response(await answer.read(), status_code=answer.status, media_type="application/json")

        @api.get("/healthz")
        async def healthz(self) -> dict:
            return {"status": "ok"}

    return Floor.bind()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor_app")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args(argv)

    import ray
    from ray import serve

    ray.init(include_dashboard=False, num_cpus=2, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    serve.run(build(args.upstream), name="floor", route_prefix="/", blocking=False)
    print(f"FLOOR READY http://127.0.0.1:{args.port}", flush=True)
    wait_for_stop_signal()
    serve.shutdown()
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
