"""Which llama.cpp CPU build to load, chosen before `llama_cpp` is imported (installers only).

The installers carry llama.cpp built more than once with GGML_NATIVE=OFF, one `lib/` folder per
variant (`cpu-variants/<name>/lib`). At start the launcher reads the CPU's flags, takes the best variant
this CPU runs and points llama-cpp-python at it (LLAMA_CPP_LIB_PATH). A CPU below the baseline, or a
forced variant it cannot run, is a clear message instead of "Illegal instruction". A pip install uses
the llama.cpp that pip built for this machine and reports "native".

    AURORA_CPU_VARIANT=x86-64   force a variant (refused if this CPU cannot run it)
    AURORA_CPU_FLAGS="sse2 avx" the CPU flags to assume (to test the choice on another machine's behalf)
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

from aurora_core.errors import AuroraError

# Best first: the instruction sets each variant's build uses (packaging/cpu_variants.sh).
VARIANTS = {
    "avx2": ("avx", "avx2", "fma", "f16c"),
    "x86-64": ("sse2",),
}
USED = "AURORA_CPU_VARIANT_USED"


class VariantError(AuroraError):
    pass


def cpu_flags(env: dict | None = None) -> set[str]:
    """The CPU's instruction-set flags, lower case ('avx2', 'fma', ...)."""
    env = os.environ if env is None else env
    if env.get("AURORA_CPU_FLAGS"):
        return set(env["AURORA_CPU_FLAGS"].lower().split())
    if sys.platform.startswith("linux"):
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
        except OSError:
            pass
        return set()
    if sys.platform == "darwin":
        import subprocess

        out = subprocess.run(["sysctl", "-n", "machdep.cpu.features", "machdep.cpu.leaf7_features"],
                             capture_output=True, text=True).stdout.lower().split()
        return set(out) | ({"sse2"} if out else set()) | ({"fma"} if "fma" in out else set())
    if sys.platform == "win32":
        import ctypes

        present = ctypes.windll.kernel32.IsProcessorFeaturePresent
        flags = {"sse2"} if present(10) else set()  # PF_XMMI64_INSTRUCTIONS_AVAILABLE
        if present(40):  # PF_AVX2_INSTRUCTIONS_AVAILABLE (Windows 10+); AVX2 CPUs have FMA and F16C
            flags |= {"avx", "avx2", "fma", "f16c"}
        return flags
    return set()


def variants_dir() -> Path | None:
    """cpu-variants/ beside the frozen executable, or None (a pip install)."""
    if getattr(sys, "frozen", False):
        base = Path(getattr(sys, "_MEIPASS", Path(sys.executable).parent))
        for candidate in (base / "cpu-variants", Path(sys.executable).parent / "cpu-variants"):
            if candidate.is_dir():
                return candidate
    folder = os.environ.get("AURORA_CPU_VARIANTS_DIR")
    return Path(folder) if folder else None


def choose(folder: Path, flags: set[str], forced: str | None = None) -> tuple[str, Path]:
    """(variant, its lib folder): the forced one if this CPU runs it, else the best it runs."""
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64", "x64", "i686"):
        raise VariantError(f"this build of Aurora Desktop is for x86-64 CPUs; this machine is {machine}")
    available = [v for v in VARIANTS if (folder / v / "lib").is_dir()]
    if not available:
        raise VariantError(f"{folder}: holds no llama.cpp build; reinstall Aurora Desktop")
    if forced:
        if forced not in VARIANTS or forced not in available:
            raise VariantError(f"AURORA_CPU_VARIANT={forced!r}: choose one of {', '.join(available)}")
        missing = [f for f in VARIANTS[forced] if f not in flags]
        if missing:
            raise VariantError(f"this CPU lacks {', '.join(m.upper() for m in missing)}, which the {forced!r} build "
                               f"needs; unset AURORA_CPU_VARIANT (or choose x86-64)")
        return forced, folder / forced / "lib"
    for variant in available:
        if all(f in flags for f in VARIANTS[variant]):
            return variant, folder / variant / "lib"
    raise VariantError("this CPU lacks SSE2, which even the baseline x86-64 build needs; Aurora Desktop cannot "
                       "run on it")


def prepare() -> str:
    """Point llama-cpp-python at the right build (call before importing llama_cpp); the variant's name."""
    folder = variants_dir()
    if folder is None:
        os.environ.setdefault(USED, "native")
        return os.environ[USED]
    name, lib = choose(folder, cpu_flags(), os.environ.get("AURORA_CPU_VARIANT") or None)
    os.environ["LLAMA_CPP_LIB_PATH"] = str(lib)
    os.environ[USED] = name
    return name


def describe() -> str:
    name = os.environ.get(USED, "native")
    return "native (built by pip for this machine)" if name == "native" else f"{name} (portable build)"


def version_text(prog: str) -> str:
    """What `--version` prints for `prog`: Aurora's version and the llama.cpp CPU build in use."""
    from . import __version__

    return f"{prog} {__version__}; llama.cpp CPU build: {describe()}"
