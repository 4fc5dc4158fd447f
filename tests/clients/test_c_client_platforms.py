"""The C client on the platforms games ship on: its library and example compile warning-free for Windows and
macOS (zig's clang with its bundled MinGW and macOS headers), and on Windows it asks nothing of the C library
beyond ISO C, so it links with MSVC's runtime as well as MinGW's (POSIX calls such as getpid, strdup or
clock_gettime exist in MinGW but not in MSVC)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "tools" / "clients" / "c"
LIBRARY = ["parley.c", "frame_check.c", "platform.c", "server_process.c"]
EXAMPLES = ["examples/conversation.c", "examples/parley_spawn.c"]
FLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic"]

try:
    import ziglang  # noqa: F401  (the test extra brings it: a clang that cross-compiles, with libc headers)
    HAVE_ZIG = True
except ImportError:
    HAVE_ZIG = False

HAVE_HEADERS = Path("/usr/include/zmq.h").is_file() and Path("/usr/include/msgpack.h").is_file()
pytestmark = pytest.mark.skipif((not HAVE_ZIG or not HAVE_HEADERS or shutil.which("nm") is None)
                                and not os.environ.get("CI"),
                                reason="needs the test extra's ziglang, binutils' nm and libzmq3-dev + libmsgpack-dev")

# What the library may call on Windows: ISO C's library (MSVC's runtime has it), libzmq, msgpack-c, itself, and
# the Win32 calls that platform.c makes.
ISO_C = {"calloc", "free", "malloc", "realloc", "memcpy", "memmove", "memset", "memcmp", "memchr", "strcmp",
         "strncmp", "strlen", "strchr", "strrchr", "strstr", "strtol", "strtoul", "strtod", "snprintf", "vsnprintf",
         "fprintf", "printf", "fputs", "puts", "fopen", "fread", "fclose", "abort", "qsort", "atoi", "getenv",
         "strcspn", "strpbrk"}
WIN32 = {"QueryPerformanceCounter", "QueryPerformanceFrequency", "GetCurrentProcessId", "rand_s",  # platform.c
         "CreatePipe", "SetHandleInformation", "CreateProcessW", "MultiByteToWideChar", "GetLastError",  # server_
         "PeekNamedPipe", "ReadFile", "Sleep", "WaitForSingleObject", "GetExitCodeProcess", "TerminateProcess",
         "CloseHandle", "InitializeProcThreadAttributeList", "UpdateProcThreadAttribute", "DeleteProcThreadAttributeList"}
COMPILER = {"___chkstk_ms", "__chkstk"}  # the compiler's stack probe for large locals (MinGW's and MSVC's)


@pytest.fixture(scope="module")
def headers(tmp_path_factory):
    """libzmq's and msgpack-c's headers alone (their platform branches are in them), not the host's C library."""
    folder = tmp_path_factory.mktemp("c-headers")
    for name in ("zmq.h", "zmq_utils.h", "msgpack.h"):
        if (Path("/usr/include") / name).is_file():
            shutil.copy(Path("/usr/include") / name, folder / name)
    shutil.copytree("/usr/include/msgpack", folder / "msgpack")
    return folder


def compile_for(target: str, source: str, headers: Path, out: Path) -> Path:
    obj = out / (Path(source).stem + ".o")
    cmd = [sys.executable, "-m", "ziglang", "cc", "-target", target, *FLAGS, f"-I{headers}", "-c",
           str(SOURCE / source), "-o", str(obj)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{source} for {target}:\n{result.stderr}"  # any warning is an error here
    return obj


def undefined_symbols(obj: Path) -> set[str]:
    result = subprocess.run(["nm", "-u", str(obj)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return {line.split()[-1].removeprefix("__imp_") for line in result.stdout.splitlines() if line.strip()}


# glibc 2.17: the oldest Linux a game still meets (CentOS 7, the Steam runtime's older images)
@pytest.mark.parametrize("target", ["x86_64-windows-gnu", "aarch64-macos", "x86_64-linux-gnu.2.17"])
def test_library_and_example_compile_warning_free(target, headers, tmp_path):
    for source in [*LIBRARY, *EXAMPLES]:
        assert compile_for(target, source, headers, tmp_path).stat().st_size > 0


def test_on_windows_it_needs_only_iso_c_win32_libzmq_and_msgpack(headers, tmp_path):
    outside = {}
    for source in LIBRARY:
        symbols = undefined_symbols(compile_for("x86_64-windows-gnu", source, headers, tmp_path))
        if source == "parley.c":
            assert {"zmq_send", "msgpack_unpack_next"} <= symbols  # the listing is read right
        odd = sorted(s for s in symbols if s not in ISO_C | WIN32 | COMPILER
                     and not s.startswith(("zmq_", "msgpack_", "parley_")))
        if odd:
            outside[source] = odd
    assert not outside, f"calls MSVC's C runtime lacks: {outside}"


CPP_USE = """
#include "parley.h"
int main() {
    parley_client *c = parley_connect("tcp://127.0.0.1:5555", nullptr, 1000);
    parley_kv state[] = {{"time", "night"}};
    parley_reply_args a{};
    a.npc = "brenna"; a.text = "Hello"; a.state = state; a.state_len = 1; a.deadline_ms = 1500;
    char id[PARLEY_ID_MAX];
    parley_event ev;
    if (parley_reply_start(c, &a, id, sizeof id) == PARLEY_OK)
        while (parley_poll(c, 0, &ev) == PARLEY_OK && ev.type != PARLEY_EVENT_NONE) {}
    parley_close(c);
}
"""


@pytest.mark.skipif(shutil.which("c++") is None, reason="needs a C++ compiler")
def test_the_header_serves_a_cpp_engine(tmp_path):
    """Unreal and most engines are C++: parley.h compiles there, warning-free, as C++17 (extern "C")."""
    source = tmp_path / "engine.cpp"
    source.write_text(CPP_USE)
    result = subprocess.run(["c++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{SOURCE}", "-c",
                             str(source), "-o", str(tmp_path / "engine.o")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


QUOTE_DRIVER = """
#include <stdio.h>
#include <stdlib.h>
#include "platform.h"
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        size_t n = parley_quote_windows_arg(argv[i], NULL);
        char *quoted = malloc(n + 1);
        if (!quoted || parley_quote_windows_arg(argv[i], quoted) != n) return 1;
        quoted[n] = 0;
        printf("%s%s", i > 1 ? " " : "", quoted);
        free(quoted);
    }
    return 0;
}
"""


def command_line_to_argv(line: str) -> list[str]:
    """How Windows' C runtime and CommandLineToArgvW split a command line (arguments after the first):
    2n backslashes and a quote are n backslashes and a quote that opens or closes; 2n+1 and a quote are n
    and a literal quote; other backslashes are literal; \"\" inside quotes is a literal quote."""
    args, i, n = [], 0, len(line)
    while i < n:
        while i < n and line[i] in " \t":
            i += 1
        if i >= n:
            break
        current, quoted = "", False
        while i < n and (quoted or line[i] not in " \t"):
            if line[i] == "\\":
                j = i
                while j < n and line[j] == "\\":
                    j += 1
                if j < n and line[j] == '"':
                    current += "\\" * ((j - i) // 2)
                    if (j - i) % 2:
                        current += '"'
                        j += 1
                    i = j
                else:
                    current += "\\" * (j - i)
                    i = j
            elif line[i] == '"':
                if quoted and i + 1 < n and line[i + 1] == '"':
                    current += '"'
                    i += 2
                else:
                    quoted = not quoted
                    i += 1
            else:
                current += line[i]
                i += 1
        args.append(current)
    return args


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
def test_a_windows_command_line_reads_back_as_the_arguments_given(tmp_path):
    """parley_server_start builds one command line for CreateProcessW: every argument must come back whole
    (spaces in install paths, trailing backslashes of folders, quotes, empty strings, non-ASCII user names)."""
    (tmp_path / "quote.c").write_text(QUOTE_DRIVER)
    built = subprocess.run(["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", f"-I{SOURCE}", str(tmp_path / "quote.c"),
                            str(SOURCE / "platform.c"), "-o", str(tmp_path / "quote")], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    args = ["plain", "two words", "", 'say "hi"', "C:\\Program Files\\Game\\", "trail\\", "a\\\\\"b",
            "\\\\server\\share\\x y", "tab\there", "--bind", "tcp://127.0.0.1:*", "C:\\Users\\Zoë Ångström\\npc",
            '\\"', '"', "x\\\\"]
    line = subprocess.run([str(tmp_path / "quote"), *args], capture_output=True, text=True, check=True).stdout
    assert command_line_to_argv(line) == args
