/* See server_process.h. The child's standard input is a pipe whose write end only this process holds (never
 * inherited, by the server or by any other child), so it closes when the game exits or crashes; stdout and
 * stderr share one pipe that is read for the ready line and drained after. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* pipe2, posix_spawn_file_actions_addclosefrom_np */
#endif
#if defined(__APPLE__) && !defined(_DARWIN_C_SOURCE)
#define _DARWIN_C_SOURCE /* POSIX_SPAWN_CLOEXEC_DEFAULT */
#endif
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include "server_process.h"
#include "platform.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#include <windows.h>
#else
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __APPLE__
#include <crt_externs.h> /* environ is not visible to a dylib or bundle (a game engine's plugin) */
#define SPAWN_ENVIRON (*_NSGetEnviron())
#else
extern char **environ;
#define SPAWN_ENVIRON environ
#endif
#endif

#define READY_PREFIX "parley serve: ready on "
#define PARLEY_ENDPOINT_MIN 64
#define OUTPUT_PIPE_BYTES (64 * 1024)

struct parley_server {
#ifdef _WIN32
    HANDLE process, input, output;
#else
    pid_t pid;
    int input, output;
#endif
    int ended, exit_code; /* exit_code once ended: the process's own, -1 if killed or crashed */
    char line[1024];      /* the line being read (longer lines are cut) */
    size_t line_len;
    char last[512]; /* the last non-empty line: the reason when it ends early */
    char endpoint[256];
    int ready;
};

/* ---- the output: lines, the ready one among them ----------------------------------------------- */

static void end_line(parley_server *s) {
    s->line[s->line_len] = '\0';
    /* found anywhere in the line: another thread's unfinished output may come before it */
    const char *ready = s->ready ? NULL : (strstr)(s->line, READY_PREFIX); /* (): not glibc's C23 macro */
    if (ready) {
        const char *start = ready + strlen(READY_PREFIX);
        size_t n = strcspn(start, " ");
        if (n > 0 && n < sizeof s->endpoint) {
            memcpy(s->endpoint, start, n);
            s->endpoint[n] = '\0';
            s->ready = 1;
        }
    } else if (s->line_len) {
        size_t n = s->line_len < sizeof s->last - 1 ? s->line_len : sizeof s->last - 1;
        memcpy(s->last, s->line, n);
        s->last[n] = '\0';
    }
    s->line_len = 0;
}

static void take(parley_server *s, const char *data, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (data[i] == '\n' || data[i] == '\r') /* \r too: a progress line rewritten in place */
            end_line(s);
        else if (s->line_len < sizeof s->line - 1)
            s->line[s->line_len++] = data[i];
    }
}

static void say(char *error, size_t error_size, const char *what, const parley_server *s) {
    if (!error || !error_size) return;
    const char *last = s && s->last[0] ? s->last : NULL;
    if (s && s->ended)
        snprintf(error, error_size, "%s (exit code %d)%s%s", what, s->exit_code, last ? ": " : "", last ? last : "");
    else
        snprintf(error, error_size, "%s%s%s", what, last ? "; its last line: " : "", last ? last : "");
}

/* ---- the platform's part ------------------------------------------------------------------------ */

#ifdef _WIN32

static wchar_t *command_line(const char *const *argv) {
    size_t n = 0;
    for (const char *const *a = argv; *a; a++) n += parley_quote_windows_arg(*a, NULL) + 1;
    char *utf8 = malloc(n + 1);
    if (!utf8) return NULL;
    size_t at = 0;
    for (const char *const *a = argv; *a; a++) {
        at += parley_quote_windows_arg(*a, utf8 + at);
        utf8[at++] = a[1] ? ' ' : '\0';
    }
    /* MB_ERR_INVALID_CHARS: an ANSI path (GetModuleFileNameA) fails here, named, instead of becoming U+FFFD */
    int wide_len = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, utf8, -1, NULL, 0);
    wchar_t *wide = wide_len > 0 ? malloc(sizeof(wchar_t) * (size_t)wide_len) : NULL;
    if (wide && MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, utf8, -1, wide, wide_len) <= 0) {
        free(wide);
        wide = NULL;
    }
    free(utf8);
    return wide;
}

static int spawn(parley_server *s, const char *const *argv, char *error, size_t error_size) {
    HANDLE in_read = NULL, out_write = NULL;
    LPPROC_THREAD_ATTRIBUTE_LIST attrs = NULL;
    SIZE_T attrs_size = 0;
    STARTUPINFOEXW si;
    PROCESS_INFORMATION pi;
    DWORD err = 0;
    BOOL ok = FALSE;
    wchar_t *cmd = command_line(argv);
    char what[200];
    if (!cmd) {
        snprintf(what, sizeof what, "could not start %s: the command line is not UTF-8 (or out of memory)", argv[0]);
        say(error, error_size, what, NULL);
        return -1;
    }
    /* no handle is inheritable by default: another thread's CreateProcess must never get the game's ends (its
     * copy of the input would keep the server alive after the game died) */
    if (!CreatePipe(&in_read, &s->input, NULL, 0) || !CreatePipe(&s->output, &out_write, NULL, OUTPUT_PIPE_BYTES) ||
        !SetHandleInformation(in_read, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT) ||
        !SetHandleInformation(out_write, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT)) {
        err = GetLastError();
        goto done;
    }
    /* and the server inherits these two alone, not every inheritable handle the game holds */
    InitializeProcThreadAttributeList(NULL, 1, 0, &attrs_size);
    attrs = malloc(attrs_size);
    HANDLE inherit[2] = {in_read, out_write};
    if (!attrs || !InitializeProcThreadAttributeList(attrs, 1, 0, &attrs_size)) {
        err = attrs ? GetLastError() : ERROR_NOT_ENOUGH_MEMORY;
        free(attrs);
        attrs = NULL;
        goto done;
    }
    if (!UpdateProcThreadAttribute(attrs, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, inherit, sizeof inherit, NULL, NULL)) {
        err = GetLastError();
        goto done;
    }
    memset(&si, 0, sizeof si);
    memset(&pi, 0, sizeof pi);
    si.StartupInfo.cb = sizeof si;
    si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
    si.StartupInfo.hStdInput = in_read;
    si.StartupInfo.hStdOutput = out_write;
    si.StartupInfo.hStdError = out_write;
    si.lpAttributeList = attrs;
    ok = CreateProcessW(NULL, cmd, NULL, NULL, TRUE, CREATE_NO_WINDOW | EXTENDED_STARTUPINFO_PRESENT, NULL, NULL,
                        &si.StartupInfo, &pi);
    if (!ok) err = GetLastError(); /* before any other call changes it */
done:
    if (attrs) {
        DeleteProcThreadAttributeList(attrs);
        free(attrs);
    }
    free(cmd);
    if (in_read) CloseHandle(in_read);
    if (out_write) CloseHandle(out_write);
    if (!ok) {
        snprintf(what, sizeof what, "could not start %s (Windows error %lu)", argv[0], (unsigned long)err);
        say(error, error_size, what, NULL);
        return -1;
    }
    CloseHandle(pi.hThread);
    s->process = pi.hProcess;
    return 0;
}

/* Whether it has ended, without waiting longer than wait_ms; records the exit code. */
static int check_ended(parley_server *s, int wait_ms) {
    if (s->ended) return 1;
    if (WaitForSingleObject(s->process, wait_ms > 0 ? (DWORD)wait_ms : 0) != WAIT_OBJECT_0) return 0;
    DWORD code = 0;
    GetExitCodeProcess(s->process, &code);
    s->ended = 1;
    s->exit_code = code >= 0x80000000UL ? -1 : (int)code; /* 0xC0000005 and the like: it crashed */
    return 1;
}

/* Up to wait_ms for output: >0 bytes taken, 0 none yet, -1 the pipe ended. */
static int read_some(parley_server *s, int wait_ms) {
    double until = parley_clock_ms() + wait_ms;
    for (;;) {
        DWORD avail = 0, got = 0;
        char buf[4096];
        if (!s->output || !PeekNamedPipe(s->output, NULL, 0, NULL, &avail, NULL)) return -1;
        if (avail) {
            if (!ReadFile(s->output, buf, avail < sizeof buf ? avail : (DWORD)sizeof buf, &got, NULL)) return -1;
            take(s, buf, got);
            return (int)got;
        }
        if (parley_clock_ms() >= until) return 0;
        if (check_ended(s, 10)) return 0; /* waits on the process rather than sleeping; its end is news too */
    }
}

/* Windows has no polite signal for a process without a console of its own: its input closing is the ask. */
static void ask_to_stop(parley_server *s) { (void)s; }

static void kill_child(parley_server *s) {
    if (s->ended) return;
    TerminateProcess(s->process, 1);
    WaitForSingleObject(s->process, 5000);
    s->ended = 1;
    s->exit_code = -1;
}

static void close_input(parley_server *s) {
    if (s->input) CloseHandle(s->input);
    s->input = NULL;
}

static void release(parley_server *s) {
    close_input(s);
    if (s->output) CloseHandle(s->output);
    if (s->process) CloseHandle(s->process);
    free(s);
}

#else

/* A pipe whose ends are close-on-exec from the start (no other thread's fork/exec can take one) and above
 * 0-2 (dup2 onto an fd equal to itself would keep close-on-exec on some C libraries). */
static int make_pipe(int fds[2]) {
#if defined(__linux__)
    if (pipe2(fds, O_CLOEXEC) != 0) return -1;
#else
    if (pipe(fds) != 0) return -1;
    for (int i = 0; i < 2; i++) fcntl(fds[i], F_SETFD, FD_CLOEXEC);
#endif
    for (int i = 0; i < 2; i++) {
        if (fds[i] <= 2) {
            int moved = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
            close(fds[i]);
            fds[i] = moved;
        }
    }
    if (fds[0] < 0 || fds[1] < 0) {
        if (fds[0] >= 0) close(fds[0]);
        if (fds[1] >= 0) close(fds[1]);
        return -1;
    }
    return 0;
}

static int spawn(parley_server *s, const char *const *argv, char *error, size_t error_size) {
    int in[2], out[2];
    if (make_pipe(in) != 0) {
        say(error, error_size, "could not make the server's pipes", NULL);
        return -1;
    }
    if (make_pipe(out) != 0) {
        close(in[0]);
        close(in[1]);
        say(error, error_size, "could not make the server's pipes", NULL);
        return -1;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_adddup2(&actions, out[1], 2);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    posix_spawn_file_actions_addclosefrom_np(&actions, 3); /* none of the game's other descriptors */
#endif
    /* the server starts with no signal blocked and every handler at its default, whatever the game's loading
     * thread had (a blocked SIGTERM would make the documented stop do nothing) */
    posix_spawnattr_t attr;
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
#ifdef POSIX_SPAWN_CLOEXEC_DEFAULT
    flags |= POSIX_SPAWN_CLOEXEC_DEFAULT; /* macOS: only the dup2'd descriptors reach the server */
#endif
    posix_spawnattr_setflags(&attr, flags);
    int rc = posix_spawnp(&s->pid, argv[0], &actions, &attr, (char *const *)argv, SPAWN_ENVIRON);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    close(in[0]);
    close(out[1]);
    s->input = in[1];
    s->output = out[0];
    if (rc != 0) {
        char what[200];
        snprintf(what, sizeof what, "could not start %s (%s)", argv[0], strerror(rc));
        say(error, error_size, what, NULL);
        return -1;
    }
    return 0;
}

/* Reap it if it has ended (blocking: wait until it has); records the exit code. */
static int reap(parley_server *s, int block) {
    if (s->ended) return 1;
    int status = 0;
    pid_t got;
    do got = waitpid(s->pid, &status, block ? 0 : WNOHANG);
    while (got < 0 && errno == EINTR);
    if (got == 0) return 0;
    s->ended = 1;
    /* ECHILD: someone else reaped it (a game with SIGCHLD ignored): its code is lost */
    s->exit_code = got == s->pid && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return 1;
}

static int check_ended(parley_server *s, int wait_ms) {
    double until = parley_clock_ms() + wait_ms;
    for (;;) {
        if (reap(s, 0) || parley_clock_ms() >= until) return s->ended;
        struct timespec pause = {0, 10 * 1000000L};
        nanosleep(&pause, NULL);
    }
}

static int read_some(parley_server *s, int wait_ms) {
    if (s->output < 0) return -1;
    struct pollfd p = {s->output, POLLIN, 0};
    int n = poll(&p, 1, wait_ms > 0 ? wait_ms : 0);
    if (n < 0) return errno == EINTR ? 0 : -1;
    if (n == 0) return 0;
    char buf[4096];
    ssize_t got = read(s->output, buf, sizeof buf);
    if (got < 0) return errno == EINTR || errno == EAGAIN ? 0 : -1;
    if (got == 0) return -1;
    take(s, buf, (size_t)got);
    return (int)got;
}

static void ask_to_stop(parley_server *s) {
    if (!s->ended) kill(s->pid, SIGTERM); /* what `parley serve` stops on as it does on its input closing */
}

static void kill_child(parley_server *s) {
    if (s->ended) return;
    kill(s->pid, SIGKILL);
    reap(s, 1);
    s->exit_code = -1;
}

static void close_input(parley_server *s) {
    if (s->input >= 0) close(s->input);
    s->input = -1;
}

static void release(parley_server *s) {
    close_input(s);
    if (s->output >= 0) close(s->output);
    free(s);
}

#endif

/* ---- the API ------------------------------------------------------------------------------------ */

/* The rest of its output once it has ended (a line that came without its newline included). */
static void read_the_rest(parley_server *s) {
    while (read_some(s, 50) > 0) {
    }
    if (s->line_len) end_line(s);
}

parley_server *parley_server_launch(const char *const *argv, char *error, size_t error_size) {
    if (error && error_size) error[0] = '\0';
    if (!argv || !argv[0]) {
        say(error, error_size, "no command to start", NULL);
        return NULL;
    }
    int tied = 0;
    for (const char *const *a = argv; *a; a++) tied |= strcmp(*a, "--exit-with-stdin") == 0;
    if (!tied) {
        say(error, error_size, "the command lacks --exit-with-stdin: without it the server outlives a game that "
                               "crashes, and closing its input does not stop it; add it", NULL);
        return NULL;
    }
    parley_server *s = calloc(1, sizeof *s);
    if (!s) {
        say(error, error_size, "out of memory", NULL);
        return NULL;
    }
#ifndef _WIN32
    s->input = s->output = -1;
#endif
    if (spawn(s, argv, error, error_size) != 0) {
        release(s);
        return NULL;
    }
    return s;
}

int parley_server_ready(parley_server *s, int wait_ms, char *endpoint, size_t endpoint_size, char *error,
                        size_t error_size) {
    if (error && error_size) error[0] = '\0';
    if (endpoint && endpoint_size) endpoint[0] = '\0';
    if (!s || !endpoint || endpoint_size < PARLEY_ENDPOINT_MIN) {
        say(error, error_size, "no server, or an endpoint buffer under 64 bytes", NULL);
        return -1;
    }
    double until = parley_clock_ms() + (wait_ms > 0 ? wait_ms : 0);
    while (!s->ready) {
        double left = until - parley_clock_ms();
        int got = read_some(s, left <= 0 ? 0 : left < 100 ? (int)left + 1 : 100);
        /* ended: its output may stay open in a process it left behind, so the process itself is asked too */
        if (got < 0 || (got == 0 && check_ended(s, 0))) {
            read_the_rest(s);
            if (s->ready) break; /* it said ready, then ended at once: parley_server_running says so */
            check_ended(s, 5000);
            say(error, error_size, "parley serve ended before it was ready", s);
            return -1;
        }
        if (!s->ready && left <= 0) return 0;
    }
    if (strlen(s->endpoint) >= endpoint_size) {
        say(error, error_size, "the endpoint does not fit the buffer given for it", NULL);
        return -1;
    }
    memcpy(endpoint, s->endpoint, strlen(s->endpoint) + 1);
    return 1;
}

parley_server *parley_server_start(const char *const *argv, int timeout_ms, char *endpoint, size_t endpoint_size,
                                   char *error, size_t error_size) {
    if (endpoint && endpoint_size) endpoint[0] = '\0';
    if (!endpoint || endpoint_size < PARLEY_ENDPOINT_MIN) {
        say(error, error_size, "no endpoint buffer, or one under 64 bytes", NULL);
        return NULL;
    }
    parley_server *s = parley_server_launch(argv, error, error_size);
    if (!s) return NULL;
    int ready = parley_server_ready(s, timeout_ms, endpoint, endpoint_size, error, error_size);
    if (ready == 1) return s;
    if (ready == 0) {
        kill_child(s);
        s->ended = 0; /* say: a timeout, not an exit code */
        char what[96];
        snprintf(what, sizeof what, "parley serve was not ready within %d ms (killed)", timeout_ms);
        say(error, error_size, what, s);
    } else if (!s->ended) {
        kill_child(s);
    }
    release(s);
    return NULL;
}

int parley_server_running(parley_server *s) {
    if (!s) return 0;
    while (read_some(s, 0) > 0) {
    }
    return !check_ended(s, 0);
}

int parley_server_stop(parley_server *s, int timeout_ms) {
    if (!s) return -1;
    close_input(s); /* with --exit-with-stdin: stop, as SIGTERM would */
    double now = parley_clock_ms(), wait = timeout_ms > 0 ? timeout_ms : 0;
    double nudge = now + wait / 2, until = now + wait;
    int nudged = 0;
    while (!check_ended(s, 0) && parley_clock_ms() < until) { /* its output kept flowing while it finishes */
        if (!nudged && parley_clock_ms() >= nudge) {
            nudged = 1;
            ask_to_stop(s);
        }
        if (read_some(s, 10) < 0) check_ended(s, 10);
    }
    if (!s->ended) kill_child(s);
    int code = s->exit_code;
    release(s);
    return code;
}
