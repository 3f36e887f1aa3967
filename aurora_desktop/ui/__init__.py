"""The PySide6 window. Everything Qt lives here, so the engine stays importable without a screen.

From keystroke to token: `Composer` (Enter, never while an input method composes) → `MainWindow.send`
stores the question and an empty answer row → `GenerationThread` runs `ChatEngine.stream` off the GUI
thread, each text piece a signal → `MainWindow` buffers pieces, `MarkdownView` renders at most ~20
times a second (finished blocks once, the tail again) and the store saves the growing answer about
once a second → the returned `Generation` arrives on `finished`, the answer is committed.
"""
