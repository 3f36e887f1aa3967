"""`aurora-chat`: offline multi-turn chat with a GGUF model in the terminal.

    aurora-chat aurora-q4_k_m.gguf                  interactive, streaming
    aurora-chat model.gguf --prompt "你好"           one answer, then exit
    echo "你好" | aurora-chat model.gguf --json      piped: one answer as JSON

In the REPL, Ctrl-C stops the answer being written (not the program); Ctrl-D or /exit quits.
Nothing here opens a network connection.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
from pathlib import Path

from aurora_core.cli import HelpFormatter
from aurora_core.errors import AuroraError, run_main
from aurora_core.gguf_meta import escape_control

from .conversation import Conversation
from .cpu import version_text
from .engine import SAMPLING_RANGES, ChatEngine, EngineConfig, SamplingSettings, consume

HELP = """commands:
  /help              this list
  /system TEXT       set the system prompt (empty TEXT clears it); the conversation starts over
  /reset             forget the conversation (the system prompt stays)
  /regen             write the last answer again
  /save FILE         save the conversation as JSON (and the model's KV cache as FILE.kv)
  /load FILE         load a conversation saved with /save (FILE.kv, if it fits this model, spares reading it)
  /set [key=value]   show the sampling settings, or set one: temperature, top_p, top_k, min_p,
                     repeat_penalty, max_tokens, seed
  /exit              quit (Ctrl-D too)
Ctrl-C stops the answer being written."""


TERMINAL_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # all but newline and tab


def visible(text: str) -> str:
    """Model text for a terminal: control characters (ESC sequences, carriage returns) shown as \\xNN, never run.

    A vocabulary piece can hold `ESC]0;title` or `ESC[2J`; printed raw it would retitle or clear the terminal.
    """
    return TERMINAL_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def state_of(saved: str | Path) -> Path:
    """Where /save keeps the conversation's KV cache: beside the JSON, FILE.kv."""
    return Path(f"{saved}.kv")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aurora-chat",
        description="Chat with a GGUF model in the terminal, offline, through llama.cpp: streaming answers, "
        "multi-turn memory (the KV cache is reused, so a follow-up costs only its new tokens), the model's own "
        "chat template. With --prompt or piped stdin it prints one answer and exits.",
        epilog=HELP, formatter_class=HelpFormatter,
    )
    p.add_argument("model", nargs="?", help="GGUF model file (from aurora-export gguf); not with --remote")
    p.add_argument("--remote", metavar="URL", help="chat through an OpenAI-compatible server instead (aurora-serve, "
                   "llama.cpp's server, vLLM), e.g. http://127.0.0.1:8399/v1; the conversation is sent there")
    p.add_argument("--api-key-env", metavar="VAR", default="AURORA_API_KEY",
                   help="with --remote: the environment variable holding the server's API key")
    p.add_argument("--model-name", help="with --remote: the server's model (default: the first it lists)")
    p.add_argument("--version", action="version", version=version_text("aurora-chat"))
    p.add_argument("--prompt", help="answer this one message and exit")
    p.add_argument("--json", action="store_true", help="with --prompt or piped stdin: print the answer as JSON")
    p.add_argument("--system", help="system prompt")
    p.add_argument("--kb", metavar="NAME", help="answer from a knowledge base of your documents (aurora-kb): the best "
                   "matching passages go into each question, and the answer's sources are printed under it")
    p.add_argument("-k", "--kb-passages", type=int, default=5, help="with --kb: passages per question")
    p.add_argument("--lora", help="GGUF LoRA adapter to apply at load time")
    p.add_argument("--ctx", type=int, default=EngineConfig.n_ctx, help="context size in tokens")
    p.add_argument("--threads", type=int, default=None, help="CPU threads")
    p.add_argument("--gpu-layers", type=int, default=0, help="layers to offload to a GPU (-1: all)")
    p.add_argument("--exact-context", action="store_true",
                   help="when the chat outgrows the context, read the kept turns again once (exact) instead of "
                   "shifting the KV cache (seamless, approximate; the default)")
    d = SamplingSettings()
    for key, (kind, lo, hi, what) in SAMPLING_RANGES.items():
        p.add_argument("--" + key.replace("_", "-"), type=kind, default=getattr(d, key),
                       help=f"{what}; {lo} to {hi}")
    p.add_argument("--seed", type=int, default=None, help="sampling seed (default: random)")
    return p


class Repl:
    def __init__(self, engine: ChatEngine, conversation: Conversation, settings: SamplingSettings,
                 out=sys.stdout, kb=None, passages: int = 5) -> None:
        self.engine, self.conv, self.settings, self.out = engine, conversation, settings, out
        self.notes_shown = 0
        self.state: Path | None = None  # FILE.kv beside the conversation last /saved or /loaded
        self.kb, self.passages = kb, passages
        self.sources: list = []  # the knowledge base's passages that went into the last question

    def ask(self, question: str) -> None:
        """The user's message as the model gets it: with a knowledge base, the best passages and their numbers go
        in with it (and stay in the conversation as sent, so the next turn reuses the KV cache)."""
        self.sources = []
        if self.kb is not None:
            from .kb.sources import budget_for, with_sources

            budget = budget_for(self.engine.n_ctx or 4096, self.settings.max_tokens)
            question, self.sources = with_sources(question, self.kb.search(question, self.passages), budget)
        self.conv.add_user(question)

    def answer(self) -> str:
        """Stream the answer to the last user message; Ctrl-C stops it and keeps what was written."""
        previous = signal.signal(signal.SIGINT, lambda *_: self.engine.cancel())
        try:
            gen = consume(self.engine.stream(self.conv, self.settings, state=self.state), self._write)
        finally:
            signal.signal(signal.SIGINT, previous)
        if gen.stop_reason == "cancelled":
            self.out.write(" [stopped]")
        self.out.write("\n")
        if self.sources:
            from .kb.sources import source_lines

            self.out.write("sources:\n" + "".join(f"  {visible(line)}\n" for line in source_lines(self.sources)))
        if gen.dropped_turns:
            kept = "; the system prompt was kept" if self.conv.system else ""
            self.out.write(f"(the conversation outgrew the context: the oldest {gen.dropped_turns} messages "
                           f"were left out{kept})\n")
        self.conv.add_assistant(gen.text, gen.reply_ids)
        return gen.text

    def _write(self, piece: str) -> None:
        self.out.write(visible(piece))
        self.out.flush()

    def command(self, line: str) -> bool:
        """Run a /command; returns False to quit."""
        name, _, arg = line[1:].partition(" ")
        arg = arg.strip()
        if name in ("exit", "quit"):
            return False
        if name == "help":
            print(HELP, file=self.out)
        elif name == "system":
            self.conv.system = arg or None
            self.conv.reset()
            self.state = None
            print("system prompt " + ("set" if arg else "cleared") + "; the conversation starts over", file=self.out)
        elif name == "reset":
            self.conv.reset()
            self.state = None
            print("conversation cleared", file=self.out)
        elif name == "regen":
            if self.conv.pop_answer() is None:
                print("nothing to write again yet", file=self.out)
            else:
                self.answer()
        elif name == "save":
            if not arg:
                print("usage: /save FILE", file=self.out)
            else:
                try:
                    self.conv.save(arg)
                    kv = self.engine.save_state(state_of(arg))  # 0 when the disk refused: the JSON is what counts
                    self.state = state_of(arg) if kv else None
                    print(f"saved to {arg}" + (f" (and the KV cache, {kv / 2**20:.1f} MiB, to {state_of(arg)})"
                                               if kv else ""), file=self.out)
                except OSError as exc:
                    print(f"cannot save to {arg}: {exc.strerror or exc}; the conversation is unchanged", file=self.out)
        elif name == "load" and not arg:
            print("usage: /load FILE (a conversation saved with /save)", file=self.out)
        elif name == "load":
            try:
                self.conv = Conversation.load(arg)
            except OSError as exc:
                print(f"cannot load {arg}: {exc.strerror or exc}; the conversation is unchanged", file=self.out)
            except ValueError as exc:
                print(f"cannot load: {exc}; the conversation is unchanged", file=self.out)
            else:
                self.state = state_of(arg) if state_of(arg).is_file() else None
                print(f"loaded {len(self.conv.messages)} messages from {arg}"
                      + (f"; system prompt: {self.conv.system[:60]}" if self.conv.system else ""), file=self.out)
                for m in self.conv.messages[-2:]:
                    print(f"  {m.role}: {visible(m.content[:70])}{'…' if len(m.content) > 70 else ''}",
                          file=self.out)
        elif name == "set" and not arg:
            print(self.settings.describe(), file=self.out)
        elif name == "set":
            key, _, value = arg.partition("=")
            try:
                self.settings.set(key.strip(), value.strip())
                print(f"{key.strip()} = {getattr(self.settings, key.strip())}", file=self.out)
            except ValueError as exc:
                print(f"cannot set: {exc}", file=self.out)
        else:
            print(f"unknown command /{name}; /help lists them", file=self.out)
        return True

    def run(self) -> int:
        _readline_history()
        info = self.engine.info
        size = f"{info.file_size / 2**30:.1f} GiB" if info.file_size >= 2**30 else f"{info.file_size / 2**20:.1f} MiB"
        if info.architecture == "remote":
            size = "the conversation is sent there"
        print(f"aurora-chat: {escape_control(info.name)} ({info.architecture}, {size}). /help for commands, "
              "Ctrl-D to quit.", file=self.out)
        self._new_notes()
        while True:
            try:
                line = input(">>> ")
            except EOFError:
                print(file=self.out)
                return 0
            except KeyboardInterrupt:
                print("\n(Ctrl-D or /exit quits)", file=self.out)
                continue
            if not line.strip():
                continue
            if line.startswith("/"):
                if not self.command(line.strip()):
                    return 0
                continue
            if self.conv.messages and self.conv.messages[-1].role == "user":
                self.conv.messages.pop()  # an earlier turn that failed
            self.ask(line)
            try:
                self.answer()
            except AuroraError as exc:  # the context is full, the conversation cannot be rendered, ...
                self.conv.messages.pop()
                print(f"cannot answer: {exc}", file=self.out)
            self._new_notes()

    def _new_notes(self) -> None:
        """Notes the engine made since the last ones were shown (a template that fell back at this turn)."""
        for w in self.engine.warnings[self.notes_shown:]:
            print(f"note: {w}", file=self.out)
        self.notes_shown = len(self.engine.warnings)


def _readline_history() -> None:
    """Line editing and history for the REPL (also for Chinese input), where readline exists."""
    try:
        import atexit
        import readline
    except ImportError:
        return
    path = Path.home() / ".aurora_chat_history"
    try:
        readline.read_history_file(path)
    except OSError:
        pass
    readline.set_history_length(1000)
    atexit.register(lambda: _save_history(readline, path))


def _save_history(readline, path: Path) -> None:
    try:
        readline.write_history_file(path)
    except OSError:
        pass


def one_shot(repl: Repl, prompt: str, as_json: bool) -> int:
    repl.ask(prompt)
    if as_json:
        g = consume(repl.engine.stream(repl.conv, repl.settings))
        print(json.dumps({"answer": g.text, "stop_reason": g.stop_reason, "prompt_tokens": g.prompt_tokens,
                          "completion_tokens": g.completion_tokens, "dropped_turns": g.dropped_turns,
                          **({"sources": [{"n": n, "path": h.path, "page": h.page, "text": h.text}
                                          for n, h in enumerate(repl.sources, 1)]} if repl.kb else {})},
                         ensure_ascii=False))
    else:
        repl.answer()
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main("aurora-chat", lambda: _chat(build_parser().parse_args(argv)))


def _tolerant_stdin() -> None:
    """Bytes that are not UTF-8, typed or piped, become U+FFFD instead of ending the program."""
    reconfigure = getattr(sys.stdin, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="replace")


def _chat(args) -> int:
    settings = SamplingSettings(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k, min_p=args.min_p,
                                repeat_penalty=args.repeat_penalty, max_tokens=args.max_tokens, seed=args.seed)
    if (args.model is None) == (args.remote is None):
        raise AuroraError("name a GGUF model file, or --remote URL for a model on a server (not both)")
    if args.remote:
        from .remote import RemoteEngine

        engine = RemoteEngine(args.remote, os.environ.get(args.api_key_env), args.model_name)
    else:
        engine = ChatEngine(args.model, EngineConfig(n_ctx=args.ctx, n_threads=args.threads,
                                                     n_gpu_layers=args.gpu_layers, lora_path=args.lora,
                                                     context_shift=not args.exact_context))
    conv = Conversation(system=args.system)
    _tolerant_stdin()
    kb = None
    try:
        if args.kb is not None:
            from .kb.index import KnowledgeBase

            kb = KnowledgeBase.open(args.kb, create=False)
        repl = Repl(engine, conv, settings, kb=kb, passages=args.kb_passages)
        if args.prompt is not None:
            return one_shot(repl, args.prompt, args.json)
        if not sys.stdin.isatty():
            prompt = sys.stdin.read().strip()
            if not prompt:
                print("aurora-chat: error: stdin was empty; pipe a message or use --prompt", file=sys.stderr)
                return 2
            return one_shot(repl, prompt, args.json)
        return repl.run()
    finally:
        if kb is not None:
            kb.close()
        engine.close()


if __name__ == "__main__":
    sys.exit(main())
