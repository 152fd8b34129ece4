/*
 * kubeling pause: the process that holds a pod's namespaces open.
 *
 * It runs as PID 1 of the pod's sandbox container, where the kernel delivers
 * no signal that has no handler, so SIGINT/SIGTERM must be caught explicitly
 * for `docker stop` to end it promptly (exit 0). When app containers share its
 * PID namespace, orphaned processes are reparented to it, so it reaps them on
 * SIGCHLD to keep zombies from piling up.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define VERSION "kubeling-pause 1.0"

static void on_terminate(int sig) {
    (void)sig;
    _exit(0);
}

static void on_child(int sig) {
    (void)sig;
    int saved = errno; /* waitpid may clobber errno of the interrupted code */
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    errno = saved;
}

static int install(int sig, void (*handler)(int)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART | (sig == SIGCHLD ? SA_NOCLDSTOP : 0);
    sigemptyset(&sa.sa_mask);
    return sigaction(sig, &sa, NULL);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "-v") == 0) {
        puts(VERSION);
        return 0;
    }
    if (getpid() != 1) {
        /* Still works, but only PID 1 inherits orphans; say so for debugging. */
        fputs("pause: warning: not running as PID 1\n", stderr);
    }
    if (install(SIGINT, on_terminate) || install(SIGTERM, on_terminate) ||
        install(SIGCHLD, on_child)) {
        perror("pause: sigaction");
        return 1;
    }
    for (;;) {
        pause();
    }
}
