/* See server_process.h. The child's standard input is a pipe whose write end only this process holds (never
 * inherited by other children), so it closes when the game exits or crashes; stdout and stderr share one pipe
 * that is read for the ready line and drained after. */
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
extern char **environ;
#endif

#define READY_PREFIX "parley serve: ready on "
#define NOT_YET (-2) /* wait_exit: still running */

struct parley_server {
#ifdef _WIN32
    HANDLE process, input, output;
#else
    pid_t pid;
    int input, output;
    int exit_code; /* valid once reaped */
    int reaped;
#endif
    char line[1024]; /* the line being read (longer lines are cut) */
    size_t line_len;
    char last[512]; /* the last non-empty line: the reason when it ends early */
    char endpoint[256];
    int ready;
};

/* ---- the output: lines, the ready one among them ----------------------------------------------- */

static void end_line(parley_server *s) {
    s->line[s->line_len] = '\0';
    if (s->line_len && s->line[s->line_len - 1] == '\r') s->line[--s->line_len] = '\0';
    if (!s->ready && strncmp(s->line, READY_PREFIX, strlen(READY_PREFIX)) == 0) {
        const char *start = s->line + strlen(READY_PREFIX);
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
        if (data[i] == '\n')
            end_line(s);
        else if (s->line_len < sizeof s->line - 1)
            s->line[s->line_len++] = data[i];
    }
}

static void say(char *error, size_t error_size, const char *what, const parley_server *s, int code) {
    if (!error || !error_size) return;
    if (code == NOT_YET)
        snprintf(error, error_size, "%s%s%s", what, s && s->last[0] ? "; its last line: " : "", s ? s->last : "");
    else
        snprintf(error, error_size, "%s (exit code %d)%s%s", what, code, s && s->last[0] ? ": " : "",
                 s ? s->last : "");
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
    int wide_len = MultiByteToWideChar(CP_UTF8, 0, utf8, -1, NULL, 0);
    wchar_t *wide = wide_len > 0 ? malloc(sizeof(wchar_t) * (size_t)wide_len) : NULL;
    if (wide && MultiByteToWideChar(CP_UTF8, 0, utf8, -1, wide, wide_len) <= 0) {
        free(wide);
        wide = NULL;
    }
    free(utf8);
    return wide;
}

static int spawn(parley_server *s, const char *const *argv, char *error, size_t error_size) {
    SECURITY_ATTRIBUTES inherit = {sizeof inherit, NULL, TRUE};
    HANDLE in_read = NULL, out_write = NULL;
    if (!CreatePipe(&in_read, &s->input, &inherit, 0) || !CreatePipe(&s->output, &out_write, &inherit, 0)) {
        say(error, error_size, "could not make the server's pipes", NULL, NOT_YET);
        return -1;
    }
    /* the game's own ends are not inherited: another child holding the input would keep the server alive */
    SetHandleInformation(s->input, HANDLE_FLAG_INHERIT, 0);
    SetHandleInformation(s->output, HANDLE_FLAG_INHERIT, 0);
    wchar_t *cmd = command_line(argv);
    STARTUPINFOW si;
    PROCESS_INFORMATION pi;
    memset(&si, 0, sizeof si);
    memset(&pi, 0, sizeof pi);
    si.cb = sizeof si;
    si.dwFlags = STARTF_USESTDHANDLES;
    si.hStdInput = in_read;
    si.hStdOutput = out_write;
    si.hStdError = out_write;
    BOOL ok = cmd && CreateProcessW(NULL, cmd, NULL, NULL, TRUE, CREATE_NO_WINDOW, NULL, NULL, &si, &pi);
    free(cmd);
    CloseHandle(in_read);
    CloseHandle(out_write);
    if (!ok) {
        char what[160];
        snprintf(what, sizeof what, "could not start %s (Windows error %lu)", argv[0], (unsigned long)GetLastError());
        say(error, error_size, what, NULL, NOT_YET);
        return -1;
    }
    CloseHandle(pi.hThread);
    s->process = pi.hProcess;
    return 0;
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
        Sleep(10);
    }
}

static int wait_exit(parley_server *s, int timeout_ms) {
    if (WaitForSingleObject(s->process, timeout_ms > 0 ? (DWORD)timeout_ms : 0) != WAIT_OBJECT_0) return NOT_YET;
    DWORD code = 0;
    GetExitCodeProcess(s->process, &code);
    return (int)code;
}

static void kill_child(parley_server *s) {
    TerminateProcess(s->process, 1);
    WaitForSingleObject(s->process, 5000);
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

static void no_inherit(int fd) { fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC); }

static int spawn(parley_server *s, const char *const *argv, char *error, size_t error_size) {
    int in[2], out[2];
    if (pipe(in) != 0) {
        say(error, error_size, "could not make the server's pipes", NULL, NOT_YET);
        return -1;
    }
    if (pipe(out) != 0) {
        close(in[0]);
        close(in[1]);
        say(error, error_size, "could not make the server's pipes", NULL, NOT_YET);
        return -1;
    }
    /* no copy of any end reaches another child of the game (dup2 onto 0-2 below clears the flag for the
     * server's own) */
    no_inherit(in[0]);
    no_inherit(in[1]);
    no_inherit(out[0]);
    no_inherit(out[1]);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_adddup2(&actions, out[1], 2);
    int rc = posix_spawnp(&s->pid, argv[0], &actions, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    close(in[0]);
    close(out[1]);
    s->input = in[1];
    s->output = out[0];
    if (rc != 0) {
        char what[160];
        snprintf(what, sizeof what, "could not start %s (%s)", argv[0], strerror(rc));
        say(error, error_size, what, NULL, NOT_YET);
        return -1;
    }
    return 0;
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

static int reap(parley_server *s, int options) {
    if (s->reaped) return s->exit_code;
    int status = 0;
    pid_t got = waitpid(s->pid, &status, options);
    if (got == 0) return NOT_YET;
    s->reaped = 1;
    s->exit_code = got == s->pid && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return s->exit_code;
}

static int wait_exit(parley_server *s, int timeout_ms) {
    double until = parley_clock_ms() + timeout_ms;
    for (;;) {
        int code = reap(s, WNOHANG);
        if (code != NOT_YET || parley_clock_ms() >= until) return code;
        struct timespec pause = {0, 10 * 1000000L};
        nanosleep(&pause, NULL);
    }
}

static void kill_child(parley_server *s) {
    if (s->reaped) return;
    kill(s->pid, SIGKILL);
    reap(s, 0);
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

parley_server *parley_server_start(const char *const *argv, int timeout_ms, char *endpoint, size_t endpoint_size,
                                   char *error, size_t error_size) {
    if (error && error_size) error[0] = '\0';
    if (!argv || !argv[0] || !endpoint || !endpoint_size) {
        say(error, error_size, "no command to start, or nowhere to put the endpoint", NULL, NOT_YET);
        return NULL;
    }
    parley_server *s = calloc(1, sizeof *s);
    if (!s) {
        say(error, error_size, "out of memory", NULL, NOT_YET);
        return NULL;
    }
#ifndef _WIN32
    s->input = s->output = -1;
#endif
    if (spawn(s, argv, error, error_size) != 0) {
        release(s);
        return NULL;
    }
    double until = parley_clock_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    while (!s->ready) {
        double left = until - parley_clock_ms();
        if (left <= 0) {
            kill_child(s);
            char what[96];
            snprintf(what, sizeof what, "parley serve was not ready within %d ms (killed)", timeout_ms);
            say(error, error_size, what, s, NOT_YET);
            release(s);
            return NULL;
        }
        if (read_some(s, left < 100 ? (int)left + 1 : 100) < 0) { /* output ended: the process is ending */
            if (s->line_len) end_line(s);
            int code = wait_exit(s, 5000);
            if (code == NOT_YET) kill_child(s);
            say(error, error_size, "parley serve ended before it was ready", s, code == NOT_YET ? -1 : code);
            release(s);
            return NULL;
        }
    }
    if (strlen(s->endpoint) >= endpoint_size) {
        kill_child(s);
        say(error, error_size, "the endpoint does not fit the buffer given for it", NULL, NOT_YET);
        release(s);
        return NULL;
    }
    memcpy(endpoint, s->endpoint, strlen(s->endpoint) + 1);
    return s;
}

int parley_server_running(parley_server *s) {
    if (!s) return 0;
    while (read_some(s, 0) > 0) {
    }
    return wait_exit(s, 0) == NOT_YET;
}

int parley_server_stop(parley_server *s, int timeout_ms) {
    if (!s) return -1;
    close_input(s); /* with --exit-with-stdin: stop, as SIGTERM would */
    double until = parley_clock_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    int code = NOT_YET;
    while (code == NOT_YET && parley_clock_ms() < until)  /* its output kept flowing while it finishes */
        code = read_some(s, 10) < 0 ? wait_exit(s, 10) : wait_exit(s, 0);
    if (code == NOT_YET) {
        kill_child(s);
        code = -1;
    }
    release(s);
    return code;
}
