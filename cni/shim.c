/* kubeling-bridge's forwarding executable: the wire protocol of cni/wire.py, in C.
 *
 * A CNI runtime starts a plugin executable for every call. Starting a Python interpreter costs
 * more CPU than the reference bridge plugin's whole ADD, so cni.install compiles this when a C
 * compiler is present: it hands env + stdin to the kubeling CNI daemon and writes its answer.
 * Whenever the daemon does not answer it execs the Python shim (FALLBACK, the script
 * cni.install writes beside it) with the same stdin and environment plus KUBELING_CNI_SHIM_STATE:
 *   absent  nobody took the request (no socket, refused, declined): do it in-process;
 *   lost    the daemon took the request and went away: an ADD must not be guessed at.
 * Build: cc -O2 -DPLUGIN='"bridge"' -DFALLBACK='"/opt/cni/bin/.kubeling-bridge.py"' shim.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef PLUGIN
#error "build with -DPLUGIN='\"bridge\"'"
#endif
#ifndef FALLBACK
#error "build with -DFALLBACK='\"/path/to/python/shim\"'"
#endif

#define DEFAULT_SOCKET "/run/kubeling/cni.sock"
#define MAX_FRAME (16u * 1024 * 1024)

extern char **environ;

struct buf {
    char *data;
    size_t len, cap;
};

static void grow(struct buf *b, size_t more) {
    if (b->len + more <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p)
        _exit(70);
    b->data = p;
    b->cap = cap;
}

static void put(struct buf *b, const void *p, size_t n) {
    grow(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void put_u32(struct buf *b, uint32_t v) {
    unsigned char be[4] = {v >> 24, v >> 16, v >> 8, v};
    put(b, be, 4);
}

static uint32_t get_u32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_item(struct buf *b, const void *p, size_t n) {
    put_u32(b, (uint32_t)n);
    put(b, p, n);
}

static int write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* 0 when exactly n bytes came, -1 on EOF or error. */
static int read_all(int fd, void *dst, size_t n) {
    char *p = dst;
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static void read_stdin(struct buf *in) {
    for (;;) {
        grow(in, 65536);
        ssize_t r = read(0, in->data + in->len, in->cap - in->len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return;
        in->len += (size_t)r;
    }
}

/* Become the Python shim, with stdin replayed from an in-memory file. */
static void fallback(const char *state, const struct buf *in) {
    int fd = memfd_create("kubeling-cni-stdin", 0);
    if (fd >= 0 && write_all(fd, in->data ? in->data : "", in->len) == 0 && lseek(fd, 0, SEEK_SET) == 0) {
        dup2(fd, 0);
        if (fd != 0)
            close(fd);
    }
    setenv("KUBELING_CNI_SHIM_STATE", state, 1);
    char *argv[] = {(char *)FALLBACK, NULL};
    execv(FALLBACK, argv);
    const char msg[] = "kubeling CNI shim: cannot run " FALLBACK "\n";
    write_all(2, msg, sizeof msg - 1);
    _exit(1);
}

static void set_timeout(int fd, int seconds) {
    struct timeval tv = {.tv_sec = seconds};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

int main(void) {
    struct buf in = {0};
    read_stdin(&in);
    const char *path = getenv("KUBELING_CNI_SOCKET");
    if (!path)
        path = DEFAULT_SOCKET;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (!*path || !strcmp(path, "none") || strlen(path) >= sizeof addr.sun_path)
        fallback("absent", &in);
    strcpy(addr.sun_path, path);

    struct buf req = {0};
    size_t count = 2;
    for (char **e = environ; *e; e++)
        count++;
    put_u32(&req, 0); /* frame length, filled in below */
    put_u32(&req, (uint32_t)count);
    put_item(&req, PLUGIN, strlen(PLUGIN));
    put_item(&req, in.data, in.len);
    for (char **e = environ; *e; e++)
        put_item(&req, *e, strlen(*e));
    uint32_t body = (uint32_t)(req.len - 4);
    unsigned char be[4] = {body >> 24, body >> 16, body >> 8, body};
    memcpy(req.data, be, 4);

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        fallback("absent", &in);
    set_timeout(fd, 1); /* a unix connect honours the send timeout */
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0)
        fallback("absent", &in);
    set_timeout(fd, 300);
    char verdict;
    if (write_all(fd, req.data, req.len) != 0 || read_all(fd, &verdict, 1) != 0 || verdict != 'A')
        fallback("absent", &in);

    unsigned char head[4];
    if (read_all(fd, head, 4) != 0)
        fallback("lost", &in);
    uint32_t size = get_u32(head);
    if (size > MAX_FRAME || size < 4)
        fallback("lost", &in);
    unsigned char *reply = malloc(size);
    if (!reply || read_all(fd, reply, size) != 0 || get_u32(reply) != 3)
        fallback("lost", &in);
    const unsigned char *item[3];
    uint32_t len[3];
    size_t pos = 4;
    for (int i = 0; i < 3; i++) {
        if (pos + 4 > size)
            fallback("lost", &in);
        len[i] = get_u32(reply + pos);
        if (len[i] > size - pos - 4)
            fallback("lost", &in);
        item[i] = reply + pos + 4;
        pos += 4 + len[i];
    }
    if (pos != size || len[0] == 0 || len[0] > 3)
        fallback("lost", &in);
    int code = 0;
    for (uint32_t i = 0; i < len[0]; i++) {
        if (item[0][i] < '0' || item[0][i] > '9')
            fallback("lost", &in);
        code = code * 10 + (item[0][i] - '0');
    }
    write_all(1, (const char *)item[1], len[1]);
    if (len[2])
        write_all(2, (const char *)item[2], len[2]);
    return code;
}
