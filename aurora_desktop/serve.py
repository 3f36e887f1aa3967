"""`aurora-serve MODEL.gguf`: Aurora's model for other programs on this computer, over the OpenAI API.

    aurora-serve aurora-q4_k_m.gguf                      http://127.0.0.1:8399/v1, key printed once
    curl -H "Authorization: Bearer $KEY" http://127.0.0.1:8399/v1/models

`GET /v1/models`, `POST /v1/chat/completions` (streamed as server-sent events, or whole, with `usage`) and
`POST /v1/completions`, on Aurora's `ChatEngine`: the model's chat template in the sandbox, the KV cache reused
across requests, the context shift. Safe by default, unlike the servers it is compared with:

- it listens on 127.0.0.1 only; another address needs `--host` (and prints a warning);
- every request needs the API key, made on first start and kept in a 0600 file (`--no-key`: loopback only);
- a request whose `Host` is not the loopback address is refused (a web page using DNS rebinding);
- no CORS headers unless `--cors-origin` lists the origin;
- bodies over 1 MiB are refused (413), and every value is checked against the engine's ranges (400);
- one answer at a time, the others wait in arrival order up to `--queue` (then 429); a client that goes away
  stops its answer.

Errors are OpenAI's JSON error objects. Starlette and uvicorn are imported when the server starts.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import math
import secrets
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from aurora_core.errors import AuroraError
from aurora_core.files import write_text

from .conversation import Conversation
from .credentials import config_dir
from .engine import SAMPLING_RANGES, ChatEngine, EngineConfig, SamplingSettings, SettingsError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
ROLES = ("system", "user", "assistant")


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8399
    api_key: str | None = None
    """None: no key (refused unless the host is loopback)."""
    cors_origins: tuple[str, ...] = ()
    max_body: int = 1 << 20
    queue: int = 16
    """Requests that may wait for the one being answered; more get 429."""
    model_name: str = "aurora"

    def __post_init__(self) -> None:
        if self.api_key is None and self.host not in LOOPBACK:
            raise AuroraError(f"--host {self.host}: without a key only 127.0.0.1 is served; drop --no-key")
        if not 0 < self.port < 65536:
            raise AuroraError(f"--port {self.port}: choose 1 to 65535")


class RequestError(Exception):
    """An OpenAI-style error: HTTP status, message, type."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.kind = status, kind


def key_file() -> Path:
    """Where the API key is kept (the user's config folder, readable by the user alone)."""
    return config_dir() / "serve-api-key"


def stored_key() -> str:
    """The API key, made on first use (0600)."""
    path = key_file()
    if path.is_file():
        key = path.read_text().strip()
        if key:
            return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = "aurora-" + secrets.token_urlsafe(32)
    write_text(path, key + "\n", private=True)
    return key


# ---------------------------------------------------------------- requests


def sampling_of(body: dict) -> SamplingSettings:
    """The request's sampling values as SamplingSettings, whose own rules check the ranges (400 otherwise)."""
    values = {}
    for key, (kind, lo, hi, _what) in SAMPLING_RANGES.items():
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or (kind is int and value != int(value)):
            raise RequestError(400, f"{key} must be a {kind.__name__} from {lo} to {hi}")
        values[key] = kind(value)
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and (not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(x, str) and x for x in stop)):
        raise RequestError(400, "stop must be a string or a list of up to 4 strings")
    if body.get("n", 1) != 1:
        raise RequestError(400, "n must be 1")
    try:
        return SamplingSettings(**values, seed=body.get("seed"), stop=tuple(stop or ()))
    except SettingsError as exc:  # out of range, or a seed that is not a whole number from 0 to 2^32 - 1
        raise RequestError(400, str(exc)) from None


def conversation_of(body: dict) -> Conversation:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or len(messages) > 10_000:
        raise RequestError(400, "messages must be a list of 1 to 10,000 messages")
    conv = Conversation()
    for k, m in enumerate(messages):
        role, content = (m.get("role"), m.get("content")) if isinstance(m, dict) else (None, None)
        if isinstance(content, list):  # [{"type": "text", "text": ...}]
            if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                       for p in content):
                raise RequestError(400, f"messages[{k}].content: only text parts are supported")
            content = "".join(p["text"] for p in content)
        if role not in ROLES or not isinstance(content, str):
            raise RequestError(400, f"messages[{k}] must be {{'role': system|user|assistant, 'content': text}}")
        if role == "system":
            if k:
                raise RequestError(400, f"messages[{k}]: a system message may only come first")
            conv.system = content
        else:
            try:
                conv.add_user(content) if role == "user" else conv.add_assistant(content)
            except ValueError as exc:
                raise RequestError(400, f"messages[{k}]: {exc}") from None
    if not conv.messages or conv.messages[-1].role != "user":
        raise RequestError(400, "the last message must be the user's")
    return conv


# ---------------------------------------------------------------- answering, one at a time


class Gate:
    """One generation at a time; up to `limit` requests wait in arrival order (asyncio.Lock is fair)."""

    def __init__(self, limit: int) -> None:
        self.lock, self.limit, self.waiting = asyncio.Lock(), limit, 0

    def check(self) -> None:
        if self.lock.locked() and self.waiting >= self.limit:
            raise RequestError(429, f"{self.limit} requests are waiting already; try again later", "rate_limit_error")

    async def enter(self) -> None:
        self.check()
        self.waiting += 1
        try:
            await self.lock.acquire()
        finally:
            self.waiting -= 1

    def leave(self) -> None:
        self.lock.release()


def run_generation(work, cancel: threading.Event, on_piece) -> threading.Thread:
    """`work(cancel)` (a stream of text pieces) in a thread; each piece and then ("end", Generation or error) go
    to `on_piece` (called from that thread)."""

    def body() -> None:
        stream = work(cancel)
        try:
            while True:
                on_piece(("piece", next(stream)))
        except StopIteration as end:
            on_piece(("end", end.value))
        except Exception as exc:  # noqa: BLE001 -- becomes an error object for the client
            on_piece(("error", exc))

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


def build_app(engine: ChatEngine, config: ServeConfig):
    import anyio
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    gate = Gate(config.queue)
    created = int(time.time())

    async def models(_request):
        return JSONResponse({"object": "list", "data": [{"id": config.model_name, "object": "model",
                                                         "created": created, "owned_by": "aurora"}]})

    async def answer(request, chat: bool):
        body = await request_json(request)
        settings = sampling_of(body)
        if chat:
            conv = conversation_of(body)
            work = lambda cancel: engine.stream(conv, settings, cancel=cancel)  # noqa: E731
        else:
            prompt = body.get("prompt")
            if not isinstance(prompt, str) or not prompt:
                raise RequestError(400, "prompt must be a non-empty string")
            work = lambda cancel: engine.stream_text(prompt, settings, cancel=cancel)  # noqa: E731
        ident = ("chatcmpl-" if chat else "cmpl-") + secrets.token_hex(12)
        if body.get("stream"):
            gate.check()  # a full queue is a 429 before the stream starts; the wait itself happens inside it
            return StreamingResponse(sse(work, ident, chat), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        await gate.enter()
        queue, running = start(work)
        try:
            text, gen = await collect(queue)
        finally:
            with anyio.CancelScope(shield=True):
                await finish(running)
        choice = {"index": 0, "finish_reason": finish_reason(gen)}
        choice.update({"message": {"role": "assistant", "content": text}} if chat else {"text": text})
        return JSONResponse({"id": ident, "object": "chat.completion" if chat else "text_completion",
                             "created": int(time.time()), "model": config.model_name, "choices": [choice],
                             "usage": usage(gen)})

    def start(work):
        loop, queue, cancel = asyncio.get_running_loop(), asyncio.Queue(), threading.Event()
        thread = run_generation(work, cancel, lambda item: loop.call_soon_threadsafe(queue.put_nowait, item))
        return queue, (thread, cancel)

    async def collect(queue):
        text = ""
        while True:
            kind, value = await queue.get()
            if kind == "piece":
                text += value
            elif kind == "error":
                raise value
            else:
                return text, value

    async def finish(running):
        thread, cancel = running
        cancel.set()  # this answer's alone; a no-op when it ended by itself
        await asyncio.get_running_loop().run_in_executor(None, thread.join)
        gate.leave()

    async def sse(work, ident, chat):
        def event(delta: dict, reason=None, extra=None) -> str:
            choice = {"index": 0, "finish_reason": reason}
            choice.update({"delta": delta} if chat else {"text": delta.get("content", "")})
            data = {"id": ident, "object": "chat.completion.chunk" if chat else "text_completion",
                    "created": int(time.time()), "model": config.model_name, "choices": [choice], **(extra or {})}
            return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

        await gate.enter()
        queue, running = start(work)
        try:
            if chat:
                yield event({"role": "assistant", "content": ""})
            while True:
                kind, value = await queue.get()
                while kind == "piece" and not queue.empty():  # pieces that arrived meanwhile: one event, not many
                    nxt = queue.get_nowait()
                    if nxt[0] != "piece":
                        yield event({"content": value})
                        kind, value = nxt
                        break
                    value += nxt[1]
                if kind == "piece":
                    yield event({"content": value})
                elif kind == "error":
                    yield f"data: {json.dumps(error_body(value))}\n\n"
                    break
                else:
                    yield event({}, finish_reason(value), {"usage": usage(value)})
                    break
            yield "data: [DONE]\n\n"
        finally:  # also when the client went away: its answer stops now (shielded: the scope is being cancelled)
            with anyio.CancelScope(shield=True):
                await finish(running)
                await asyncio.sleep(0)
            while not queue.empty():
                kind, value = queue.get_nowait()
                if kind == "end" and value.stop_reason == "cancelled":
                    print(f"aurora-serve: {ident}: the client went away; its answer stopped after "
                          f"{value.completion_tokens} tokens", file=sys.stderr, flush=True)

    async def chat_completions(request):
        return await answer(request, chat=True)

    async def completions(request):
        return await answer(request, chat=False)

    async def request_json(request) -> dict:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            raise RequestError(400, "the body is not JSON") from None
        if not isinstance(body, dict):
            raise RequestError(400, "the body must be a JSON object")
        return body

    async def on_request_error(_request, exc: RequestError):
        return JSONResponse(error_body(exc), status_code=exc.status)

    app = Starlette(routes=[Route("/v1/models", models, methods=["GET"]),
                            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
                            Route("/v1/completions", completions, methods=["POST"])],
                    exception_handlers={RequestError: on_request_error})
    return Guard(app, config)


def finish_reason(gen) -> str:
    return "length" if gen.stop_reason == "length" else "stop"


def usage(gen) -> dict:
    return {"prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.completion_tokens,
            "total_tokens": gen.prompt_tokens + gen.completion_tokens}


def error_body(exc: Exception) -> dict:
    kind = getattr(exc, "kind", "server_error" if not isinstance(exc, AuroraError) else "invalid_request_error")
    return {"error": {"message": str(exc), "type": kind, "param": None, "code": None}}


# ---------------------------------------------------------------- the guard in front of every request


class Guard:
    """ASGI middleware: Host check (loopback binding), API key, body size, CORS only for listed origins."""

    def __init__(self, app, config: ServeConfig) -> None:
        self.app, self.config = app, config
        loopback = config.host in LOOPBACK
        self.hosts = {f"{h}:{config.port}" for h in ("127.0.0.1", "localhost", "[::1]")} | \
            {"127.0.0.1", "localhost", "[::1]"} if loopback else None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        origin = headers.get("origin")
        cors = origin if origin in self.config.cors_origins else None
        if self.hosts is not None and headers.get("host", "").lower() not in self.hosts:
            return await reply(send, 403, "the Host header is not this server's address (refused against DNS "
                                          "rebinding)", "permission_error")
        if scope["method"] == "OPTIONS":
            return await reply(send, 204 if cors else 403, "" if cors else "this origin is not allowed",
                               "permission_error", cors, preflight=True)
        if self.config.api_key is not None:
            given = headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.config.api_key}".encode()):
                return await reply(send, 401, "a valid API key is needed: Authorization: Bearer KEY (the key "
                                              "aurora-serve printed)", "authentication_error", cors)
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.config.max_body):
            return await reply(send, 413, f"the body is larger than {self.config.max_body:,} bytes",
                               "invalid_request_error", cors)
        received = 0

        async def bounded_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.config.max_body:
                raise RequestError(413, f"the body is larger than {self.config.max_body:,} bytes")
            return message

        async def send_with_cors(message):
            if cors and message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + [
                    (b"access-control-allow-origin", cors.encode()), (b"vary", b"Origin")]
            await send(message)

        await self.app(scope, bounded_receive, send_with_cors)


async def reply(send, status: int, message: str, kind: str, cors: str | None = None, preflight: bool = False):
    body = b"" if status == 204 else json.dumps(error_body(RequestError(status, message, kind))).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if cors:
        headers += [(b"access-control-allow-origin", cors.encode()), (b"vary", b"Origin")]
        if preflight:
            headers += [(b"access-control-allow-methods", b"GET, POST, OPTIONS"),
                        (b"access-control-allow-headers", b"authorization, content-type")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# ---------------------------------------------------------------- the command


def build_parser() -> argparse.ArgumentParser:
    from aurora_core.cli import HelpFormatter

    p = argparse.ArgumentParser(prog="aurora-serve", description=__doc__.split("\n\n")[0] + " Safe by default: "
                                "loopback only, an API key, Host checks, no CORS, bounded requests.",
                                formatter_class=HelpFormatter)
    p.add_argument("model", help="GGUF model file")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (another than 127.0.0.1 serves the "
                   "network: a warning is printed)")
    p.add_argument("--port", type=int, default=8399)
    p.add_argument("--no-key", action="store_true", help="serve without an API key (127.0.0.1 only)")
    p.add_argument("--cors-origin", action="append", default=[], help="a web origin allowed to call (repeatable)")
    p.add_argument("--queue", type=int, default=16, help="requests that may wait for the one being answered")
    p.add_argument("--ctx", type=int, default=EngineConfig.n_ctx, help="context size in tokens")
    p.add_argument("--threads", type=int, default=None, help="CPU threads")
    p.add_argument("--name", default="aurora", help="the model's name in /v1/models")
    return p


def main(argv: list[str] | None = None) -> int:
    from aurora_core.errors import run_main

    return run_main("aurora-serve", lambda: _serve(build_parser().parse_args(argv)))


def _serve(args) -> int:
    import uvicorn

    config = ServeConfig(host=args.host, port=args.port, api_key=None if args.no_key else stored_key(),
                         cors_origins=tuple(args.cors_origin), queue=args.queue, model_name=args.name)
    engine = ChatEngine(args.model, EngineConfig(n_ctx=args.ctx, n_threads=args.threads))
    if config.host not in LOOPBACK:
        print(f"aurora-serve: warning: listening on {config.host}: other computers can reach this model "
              "(with the key)", file=sys.stderr)
    print(f"aurora-serve: {engine.info.name} at http://{config.host}:{config.port}/v1"
          + (f"  API key: {config.api_key}  (kept in {key_file()})" if config.api_key else "  (no key)"), flush=True)
    try:
        uvicorn.Server(uvicorn_config(engine, config)).run()
    finally:
        engine.close()
    return 0


def uvicorn_config(engine: ChatEngine, config: ServeConfig):
    import uvicorn

    return uvicorn.Config(build_app(engine, config), host=config.host, port=config.port, log_level="warning",
                          server_header=False, date_header=False, timeout_graceful_shutdown=2)


class BackgroundServer:
    """aurora-serve inside another program (the window's switch): uvicorn in a thread of its own, on an engine the
    program keeps using (`ChatEngine.turn` lets one answer run at a time).

        server = BackgroundServer(engine, ServeConfig(api_key=stored_key()))
        server.start()          # AuroraError when the port is taken
        server.url              # http://127.0.0.1:8399/v1
        server.stop()           # answers being streamed stop; the port is free again
    """

    def __init__(self, engine: ChatEngine, config: ServeConfig) -> None:
        import uvicorn

        self.config = config
        self.server = uvicorn.Server(uvicorn_config(engine, config))
        self.thread = threading.Thread(target=self._run, name="aurora-serve", daemon=True)

    def _run(self) -> None:
        try:
            self.server.run()
        except SystemExit:  # uvicorn's way of saying that it could not bind (it logged why); `start` reports it
            pass

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.config.port}/v1"

    def start(self, timeout: float = 15.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:  # uvicorn exits when it cannot bind
                self.stop()
                raise AuroraError(f"cannot serve at {self.config.host}:{self.config.port}: the port is in use "
                                  "or not allowed; choose another port")
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout)


if __name__ == "__main__":
    sys.exit(main())
