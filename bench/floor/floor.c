/*
 * floor: the least a WebSocket pub/sub server over Redis can do, as the benchmark's floor.
 *
 *   floor HOST PORT REDIS_PORT        (FLOOR_NODELAY=0 leaves Nagle's algorithm on, as nginx does)
 *
 * One thread, one epoll set, no framework, no JSON: Nchan's interface as scripts/bench.sh uses it
 * (WebSocket subscribers on /sub/<topic>, WebSocket publishers on /pub/<topic>, GET /health),
 * so chorus-bench measures it with `--target nchan`. A published frame goes to Redis
 * (`PUBLISH floor:<topic>`), comes back on the subscriber connection (`SUBSCRIBE floor:<topic>`,
 * sent when a topic gets its first local subscriber), is framed once, and the frames of
 * everything read from Redis since the socket became readable (all reads until EAGAIN) are
 * written to each subscriber socket with one write(2), queued only when the socket is full. That is the shape of
 * Chorus and of Nchan with nothing else: whatever a real server costs above this program is its
 * own overhead; what this program costs is close to what the machine itself costs (kernel,
 * loopback, scheduling), for this one design.
 *
 * Not a server to deploy: no limits beyond a bounded output queue per socket, no TLS, no auth.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sha1.h"

enum kind { LISTENER, HTTP, SUBSCRIBER, PUBLISHER, REDIS_SUB, REDIS_PUB };

struct buf { char *p; size_t len, cap; };

struct conn {
    int fd;           /* -1 once closed; freed after the current epoll batch */
    enum kind kind;
    int topic;        /* SUBSCRIBER, PUBLISHER: index into topics */
    int slot;         /* SUBSCRIBER: index in its topic's list */
    struct buf in;
    struct buf out;   /* bytes the socket did not take yet; for Redis, also commands not sent */
    int want_out;     /* registered for EPOLLOUT: out is sent in order when the socket drains */
    struct conn *next_dead;
};

struct topic { char *name; struct conn **subs; int count, cap; int subscribed; };

static int ep;
static int nodelay = 1;
static struct conn *redis_sub, *redis_pub;
static struct topic *topics;
static int ntopics, captopics;
static struct conn *dead; /* closed during this batch: later events of the batch may name them */
static const size_t out_limit = 4u << 20; /* bytes queued per socket before it is closed */

static void die(const char *what) { perror(what); exit(1); }

static void buf_put(struct buf *b, const void *p, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p) die("realloc");
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void buf_drop(struct buf *b, size_t n) {
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

static void watch(struct conn *c, uint32_t events, int op) {
    struct epoll_event ev = { .events = events, .data.ptr = c };
    if (epoll_ctl(ep, op, c->fd, &ev) < 0) die("epoll_ctl");
}

static struct conn *add_conn(int fd, enum kind kind) {
    struct conn *c = calloc(1, sizeof *c);
    if (!c) die("calloc");
    c->fd = fd;
    c->kind = kind;
    c->topic = -1;
    watch(c, EPOLLIN, EPOLL_CTL_ADD);
    return c;
}

static int find_topic(const char *name, size_t len) {
    for (int i = 0; i < ntopics; i++)
        if (strlen(topics[i].name) == len && memcmp(topics[i].name, name, len) == 0) return i;
    if (ntopics == captopics) {
        captopics = captopics ? captopics * 2 : 16;
        topics = realloc(topics, captopics * sizeof *topics);
        if (!topics) die("realloc");
    }
    struct topic *t = &topics[ntopics];
    memset(t, 0, sizeof *t);
    t->name = strndup(name, len);
    return ntopics++;
}

static void close_conn(struct conn *c) {
    if (c->fd < 0) return;
    if (c->kind == REDIS_SUB || c->kind == REDIS_PUB) { fprintf(stderr, "floor: redis closed\n"); exit(1); }
    if (c->kind == SUBSCRIBER) {
        struct topic *t = &topics[c->topic];
        struct conn *last = t->subs[--t->count];
        t->subs[c->slot] = last;
        last->slot = c->slot;
    }
    close(c->fd);
    c->fd = -1;
    c->next_dead = dead;
    dead = c;
}

static void free_dead(void) {
    while (dead) {
        struct conn *c = dead;
        dead = c->next_dead;
        free(c->in.p);
        free(c->out.p);
        free(c);
    }
}

/* Writes what the socket takes of out now; registers for EPOLLOUT while anything is left. */
static void flush_out(struct conn *c) {
    while (c->out.len) {
        ssize_t w = write(c->fd, c->out.p, c->out.len);
        if (w < 0 && errno != EAGAIN) { close_conn(c); return; }
        if (w < 0) break;
        buf_drop(&c->out, (size_t)w);
    }
    int want = c->out.len > 0;
    if (want != c->want_out) watch(c, want ? EPOLLIN | EPOLLOUT : EPOLLIN, EPOLL_CTL_MOD);
    c->want_out = want;
}

/* Writes to a client what its socket takes now, straight from p; the rest is queued (up to
 * out_limit, past which the client is closed). Returns 0 when c was closed. */
static int send_bytes(struct conn *c, const char *p, size_t n) {
    if (!c->want_out) {
        ssize_t w = write(c->fd, p, n);
        if (w < 0 && errno != EAGAIN) { close_conn(c); return 0; }
        if (w < 0) w = 0;
        p += w;
        n -= (size_t)w;
        if (n == 0) return 1;
        watch(c, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
        c->want_out = 1;
    }
    if (c->out.len + n > out_limit) { close_conn(c); return 0; }
    buf_put(&c->out, p, n);
    return 1;
}

/* Queues a command for Redis (RESP: an array of bulk strings); redis_flush sends it. */
static void redis_command(struct conn *r, int argc, const char **argv, const size_t *lens) {
    char head[32];
    buf_put(&r->out, head, (size_t)snprintf(head, sizeof head, "*%d\r\n", argc));
    for (int i = 0; i < argc; i++) {
        buf_put(&r->out, head, (size_t)snprintf(head, sizeof head, "$%zu\r\n", lens[i]));
        buf_put(&r->out, argv[i], lens[i]);
        buf_put(&r->out, "\r\n", 2);
    }
}

static void redis_flush(struct conn *r) {
    if (!r->want_out) flush_out(r); /* else EPOLLOUT sends everything in order */
}

static void publish(int topic, const char *payload, size_t len) {
    char channel[512];
    int n = snprintf(channel, sizeof channel, "floor:%s", topics[topic].name);
    const char *argv[] = { "PUBLISH", channel, payload };
    size_t lens[] = { 7, (size_t)n, len };
    redis_command(redis_pub, 3, argv, lens);
}

/* Messages from Redis are framed once each and written in batches: the frames of consecutive
 * messages of one topic (of everything one readable event brought) go to each subscriber in one
 * write(2), as a server that is behind should send them. */
static struct buf batch;
static int batch_topic = -1;

static void flush_batch(void) {
    if (batch_topic < 0 || batch.len == 0) return;
    struct topic *tp = &topics[batch_topic];
    for (int i = tp->count - 1; i >= 0; i--) send_bytes(tp->subs[i], batch.p, batch.len);
    batch.len = 0;
    batch_topic = -1;
}

static void deliver(const char *channel, size_t clen, const char *payload, size_t len) {
    if (clen < 6) return;
    int t = find_topic(channel + 6, clen - 6);
    if (t != batch_topic) { flush_batch(); batch_topic = t; }
    unsigned char head[10];
    size_t h = 2;
    head[0] = 0x81;
    if (len < 126) head[1] = (unsigned char)len;
    else if (len < 65536) { head[1] = 126; head[2] = (unsigned char)(len >> 8); head[3] = (unsigned char)len; h = 4; }
    else { head[1] = 127; for (int i = 0; i < 8; i++) head[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i)); h = 10; }
    buf_put(&batch, head, h);
    buf_put(&batch, payload, len);
}

/* The length of the line at p, newline included; 0 when it is not complete yet. */
static size_t resp_line(const char *p, const char *end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    return nl ? (size_t)(nl - p + 1) : 0;
}

/* Parses one RESP value at p; returns its length, 0 when incomplete. Bulk strings of an array
 * (up to 4) land in parts. */
static size_t resp_value(const char *p, const char *end, const char **parts, size_t *plens, int *nparts) {
    size_t l = resp_line(p, end);
    if (!l) return 0;
    if (*p == '*') {
        long n = strtol(p + 1, NULL, 10);
        size_t used = l;
        *nparts = 0;
        for (long i = 0; i < n; i++) {
            int ignored;
            const char *part = p + used;
            size_t m = resp_value(part, end, NULL, NULL, &ignored);
            if (!m) return 0;
            if (parts && *nparts < 4 && *part == '$') {
                const char *body = memchr(part, '\n', m) + 1;
                parts[*nparts] = body;
                plens[*nparts] = (size_t)strtol(part + 1, NULL, 10);
                (*nparts)++;
            }
            used += m;
        }
        return used;
    }
    if (*p == '$') {
        long n = strtol(p + 1, NULL, 10);
        if (n < 0) return l;
        if ((size_t)(end - p) < l + (size_t)n + 2) return 0;
        return l + (size_t)n + 2;
    }
    return l; /* +OK, -ERR, :N */
}

static void on_redis(struct conn *r) {
    const char *p = r->in.p, *end = r->in.p + r->in.len;
    while (p < end) {
        const char *parts[4];
        size_t lens[4];
        int n = 0;
        size_t m = resp_value(p, end, parts, lens, &n);
        if (!m) break;
        if (*p == '-') fprintf(stderr, "floor: redis: %.*s", (int)m, p);
        if (r == redis_sub && n == 3 && lens[0] == 7 && memcmp(parts[0], "message", 7) == 0)
            deliver(parts[1], lens[1], parts[2], lens[2]);
        p += m;
    }
    flush_batch();
    buf_drop(&r->in, (size_t)(p - r->in.p));
}

static void accept_key(const char *key, size_t len, char out[29]) {
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char digest[20], input[128];
    if (len > 64) len = 64;
    memcpy(input, key, len);
    memcpy(input + len, guid, sizeof guid - 1);
    sha1(input, len + sizeof guid - 1, digest);
    int o = 0;
    for (int i = 0; i < 21; i += 3) {
        uint32_t v = (uint32_t)digest[i] << 16 | (i + 1 < 20 ? (uint32_t)digest[i + 1] << 8 : 0) | (i + 2 < 20 ? digest[i + 2] : 0);
        out[o++] = b64[v >> 18 & 63];
        out[o++] = b64[v >> 12 & 63];
        out[o++] = i + 1 < 20 ? b64[v >> 6 & 63] : '=';
        out[o++] = i + 2 < 20 ? b64[v & 63] : '=';
    }
    out[28] = 0;
}

static void on_frames(struct conn *c);

/* An HTTP request: /health, or an upgrade to a subscriber or publisher WebSocket. */
static void on_http(struct conn *c) {
    char *end = memmem(c->in.p, c->in.len, "\r\n\r\n", 4);
    if (!end) { if (c->in.len > 16384) close_conn(c); return; }
    size_t head_len = (size_t)(end - c->in.p) + 4;
    char *path = memchr(c->in.p, ' ', head_len);
    char *path_end = path ? memchr(path + 1, ' ', head_len - (size_t)(path + 1 - c->in.p)) : NULL;
    if (!path_end) { close_conn(c); return; }
    path++;
    size_t plen = (size_t)(path_end - path);
    if (plen == 7 && memcmp(path, "/health", 7) == 0) {
        static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
        if (write(c->fd, ok, sizeof ok - 1) < 0) { /* the client went away */ }
        close_conn(c);
        return;
    }
    enum kind kind;
    if (plen > 5 && memcmp(path, "/sub/", 5) == 0) kind = SUBSCRIBER;
    else if (plen > 5 && memcmp(path, "/pub/", 5) == 0) kind = PUBLISHER;
    else { close_conn(c); return; }
    const char *key = NULL;
    size_t klen = 0;
    for (char *line = memchr(c->in.p, '\n', head_len); line && line < end; line = memchr(line + 1, '\n', (size_t)(end - line))) {
        line++;
        if (strncasecmp(line, "Sec-WebSocket-Key:", 18) == 0) {
            key = line + 18;
            while (*key == ' ') key++;
            const char *e = key;
            while (*e != '\r' && *e != '\n') e++;
            klen = (size_t)(e - key);
        }
    }
    if (!key) { close_conn(c); return; }
    char accept[29];
    accept_key(key, klen, accept);
    char reply[256];
    int n = snprintf(reply, sizeof reply, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept);
    c->kind = kind;
    c->topic = find_topic(path + 5, plen - 5);
    buf_drop(&c->in, head_len);
    if (kind == SUBSCRIBER) {
        struct topic *t = &topics[c->topic];
        if (t->count == t->cap) {
            t->cap = t->cap ? t->cap * 2 : 64;
            t->subs = realloc(t->subs, (size_t)t->cap * sizeof *t->subs);
            if (!t->subs) die("realloc");
        }
        c->slot = t->count;
        t->subs[t->count++] = c;
        if (!t->subscribed) {
            char channel[512];
            int cl = snprintf(channel, sizeof channel, "floor:%s", t->name);
            const char *argv[] = { "SUBSCRIBE", channel };
            size_t lens[] = { 9, (size_t)cl };
            redis_command(redis_sub, 2, argv, lens);
            redis_flush(redis_sub);
            t->subscribed = 1;
        }
    }
    if (send_bytes(c, reply, (size_t)n) && c->in.len) on_frames(c);
}

/* Client frames (masked): text on a publisher is published; close is answered; ping ponged.
 * What was published before a close or a bad frame is still sent to Redis. */
static void on_frames(struct conn *c) {
    size_t used = 0;
    int open = 1;
    while (open) {
        unsigned char *p = (unsigned char *)c->in.p + used;
        size_t avail = c->in.len - used;
        if (avail < 2) break;
        int opcode = p[0] & 0x0f;
        uint64_t len = p[1] & 0x7f;
        size_t h = 2;
        if (len == 126) { if (avail < 4) break; len = (uint64_t)p[2] << 8 | p[3]; h = 4; }
        else if (len == 127) { if (avail < 10) break; len = 0; for (int i = 0; i < 8; i++) len = len << 8 | p[2 + i]; h = 10; }
        if (!(p[1] & 0x80) || len > (16u << 20)) { close_conn(c); open = 0; break; }
        if (avail < h + 4 + len) break;
        unsigned char *mask = p + h, *body = p + h + 4;
        for (uint64_t i = 0; i < len; i++) body[i] ^= mask[i & 3];
        used += h + 4 + (size_t)len;
        if (opcode == 1 && c->kind == PUBLISHER) publish(c->topic, (char *)body, (size_t)len);
        else if (opcode == 8) {
            static const unsigned char bye[] = { 0x88, 0 };
            if (send_bytes(c, (const char *)bye, 2)) close_conn(c);
            open = 0;
        } else if (opcode == 9 && len < 126) {
            unsigned char pong[2] = { 0x8a, (unsigned char)len };
            open = send_bytes(c, (const char *)pong, 2) && send_bytes(c, (char *)body, (size_t)len);
        }
    }
    if (open) buf_drop(&c->in, used);
    redis_flush(redis_pub);
}

static void on_readable(struct conn *c) {
    for (;;) {
        if (c->in.cap - c->in.len < 16384) {
            size_t cap = c->in.cap ? c->in.cap * 2 : 16384;
            c->in.p = realloc(c->in.p, cap);
            if (!c->in.p) die("realloc");
            c->in.cap = cap;
        }
        ssize_t r = read(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len);
        if (r == 0 || (r < 0 && errno != EAGAIN)) { close_conn(c); return; }
        if (r < 0) break;
        c->in.len += (size_t)r;
    }
    switch (c->kind) {
    case HTTP: on_http(c); break;
    case SUBSCRIBER: case PUBLISHER: on_frames(c); break;
    case REDIS_SUB: case REDIS_PUB: on_redis(c); break;
    case LISTENER: break;
    }
}

static void on_accept(struct conn *l) {
    for (;;) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == ECONNABORTED) return;
            if (errno == EMFILE || errno == ENFILE) { perror("floor: accept"); return; }
            die("accept4");
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, sizeof nodelay);
        add_conn(fd, HTTP);
    }
}

static int connect_redis(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect to redis");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) die("fcntl");
    return fd;
}

static volatile sig_atomic_t stopping;
static void on_signal(int sig) { (void)sig; stopping = 1; }

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: floor HOST PORT REDIS_PORT\n"); return 2; }
    const char *nd = getenv("FLOOR_NODELAY");
    if (nd && strcmp(nd, "0") == 0) nodelay = 0;
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0) die("epoll_create1");

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2])) };
    if (inet_pton(AF_INET, argv[1], &a.sin_addr) != 1) { fprintf(stderr, "floor: bad host %s\n", argv[1]); return 2; }
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 4096) < 0) die("bind/listen");
    add_conn(lfd, LISTENER);
    redis_sub = add_conn(connect_redis(atoi(argv[3])), REDIS_SUB);
    redis_pub = add_conn(connect_redis(atoi(argv[3])), REDIS_PUB);

    struct epoll_event events[256];
    while (!stopping) {
        int n = epoll_wait(ep, events, 256, -1);
        if (n < 0) { if (errno == EINTR) continue; die("epoll_wait"); }
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c->fd < 0) continue;
            if (c->kind == LISTENER) { on_accept(c); continue; }
            if (events[i].events & EPOLLOUT) flush_out(c);
            if (c->fd >= 0 && events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c);
        }
        free_dead();
    }
    fprintf(stderr, "floor: stopped\n");
    return 0;
}
