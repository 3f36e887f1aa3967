"""The installers' one executable: `aurora-desktop` opens the window, `aurora-chat` (a link to it, or
`aurora-desktop chat`) is the REPL, `aurora-serve` (a link, or `aurora-desktop serve`) the OpenAI-compatible server,
`aurora-kb` (a link, or `aurora-desktop kb`) the knowledge bases.

Chooses the llama.cpp CPU build before llama_cpp is imported (aurora_desktop.cpu), then imports llama_cpp
before PySide6 (llama-cpp-python #2029).
"""

import os
import sys


def main() -> int:
    import multiprocessing

    multiprocessing.freeze_support()  # a knowledge base reads PDFs in a spawned worker: this executable, again
    if sys.argv[1:2] == ["import-chats"]:  # the window's import, in a process of its own (no llama.cpp, no Qt)
        from aurora_desktop.import_chats import main as import_chats

        return import_chats(sys.argv[2:])
    from aurora_desktop import cpu

    try:
        cpu.prepare()
    except cpu.VariantError as exc:
        print(f"aurora: {exc}", file=sys.stderr)
        return 2
    import llama_cpp  # noqa: F401

    if sys.argv[1:2] and sys.argv[1] in COMMANDS:
        command = sys.argv.pop(1)
    else:  # the link's name
        command = next((c for c in COMMANDS if os.path.basename(sys.argv[0]).startswith(f"aurora-{c}")), None)
    if command == "kb":  # no llama.cpp needed, but it is loaded above like for every command (cheap)
        from aurora_desktop.kb.cli import main as run
    elif command == "chat":
        from aurora_desktop.chat_cli import main as run
    elif command == "serve":
        from aurora_desktop.serve import main as run
    else:
        from aurora_desktop.app import main as run
    return run()


COMMANDS = ("chat", "serve", "kb")  # `aurora-desktop chat …`, or the link named aurora-chat


if __name__ == "__main__":
    sys.exit(main())
