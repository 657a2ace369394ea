/* floor: the least work a WebSocket echo server can do for a benchmark, on
 * io_uring and on epoll. ringecho's figures in results/ are stated against it:
 * what no design can beat by much on the machine at hand.
 *
 * What it does, and nothing else:
 *   - the opening handshake (Sec-WebSocket-Accept, with its own SHA-1), on any path;
 *   - masked frames echoed in place: each frame is unmasked where it was
 *     received, the server's header (4 bytes shorter: no mask key) is written
 *     over the end of the client's, several frames of one receive are packed
 *     together, and the echo is sent from the receive buffer itself;
 *   - a frame cut by a receive boundary is gathered in a per-connection carry
 *     (a copy, counted and printed on exit); the echo of the gathered frames is
 *     sent from that carry;
 *   - a ping gets a pong, a pong is dropped, a close frame is echoed and the
 *     connection closed; anything an echo benchmark never sends (an unmasked
 *     frame, reserved bits or opcodes, a frame over 16 MiB) drops the connection.
 * No UTF-8 check, no reassembly of fragments (each fragment is echoed as it
 * comes), no limits, no keep-alive, no HTTP beyond the upgrade.
 *
 *   uring: multishot accept; multishot recv into one provided-buffer ring
 *          (BUF_COUNT x BUF_SIZE); a buffer goes back to the ring when the send
 *          of its echo completes; one io_uring_submit_and_wait per turn
 *          (SINGLE_ISSUER, DEFER_TASKRUN); one send in flight per connection,
 *          later echoes queue behind it.
 *   epoll: level-triggered epoll_wait; recv into one 64 KiB buffer shared by all
 *          connections; send(); what the kernel does not take waits for EPOLLOUT
 *          and the connection is not read meanwhile.
 *
 * Build (needs gcc and liburing; Debian: liburing-dev): `make -C bench/floor OUT=DIR`
 * builds DIR/floor (4096 buffers of 4 KiB) and DIR/floor-32k (2048 of 32 KiB,
 * which hold a whole 16 KiB frame, for the 16 KiB cases); see the Makefile.
 * scripts/measure-engine.py and bench/tests/floor.rs build them into target/floor/.
 *
 * Usage: floor uring|epoll PORT
 * Listens on 127.0.0.1:PORT (0 picks a free port), prints
 * "floor: listening on http://127.0.0.1:PORT ..." on stderr, runs until SIGINT or
 * SIGTERM, then prints its copy count and exits 0. Exit 2: usage error;
 * exit 1: the listener or the ring could not be set up. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef BUF_SIZE
#define BUF_SIZE 4096
#endif
#ifndef BUF_COUNT
#define BUF_COUNT 4096 /* a power of two, at most 32768 */
#endif
#define EPOLL_READ_SIZE 65536
#define MAX_FRAME (16u << 20)
#define MAX_HEAD 8192 /* the largest HTTP request head accepted */
#define BUF_GROUP 7

static volatile sig_atomic_t stop;
static unsigned long long receives_copied; /* receives that went (partly) to a carry */

/* ------------------------------------------------------------ handshake */

static uint32_t rotl(uint32_t x, int n) { return x << n | x >> (32 - n); }

/* SHA-1 (FIPS 180-4) of a short message; only Sec-WebSocket-Accept needs it. */
static void sha1(const unsigned char *msg, size_t len, unsigned char digest[20]) {
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    size_t padded = ((len + 8) / 64 + 1) * 64; /* room for 0x80 and the 64-bit length */
    for (size_t block = 0; block < padded; block += 64) {
        unsigned char chunk[64];
        for (int i = 0; i < 64; i++) {
            size_t k = block + (size_t)i;
            chunk[i] = k < len ? msg[k] : k == len ? 0x80 : 0;
        }
        if (block + 64 == padded)
            for (int i = 0; i < 8; i++) chunk[56 + i] = (unsigned char)((uint64_t)len * 8 >> (56 - 8 * i));
        uint32_t w[80];
        for (int i = 0; i < 16; i++)
            w[i] = (uint32_t)chunk[4 * i] << 24 | (uint32_t)chunk[4 * i + 1] << 16 | (uint32_t)chunk[4 * i + 2] << 8 |
                   chunk[4 * i + 3];
        for (int i = 16; i < 80; i++) w[i] = rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
        for (int i = 0; i < 80; i++) {
            uint32_t f, k;
            if (i < 20) f = (b & c) | (~b & d), k = 0x5A827999;
            else if (i < 40) f = b ^ c ^ d, k = 0x6ED9EBA1;
            else if (i < 60) f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
            else f = b ^ c ^ d, k = 0xCA62C1D6;
            uint32_t t = rotl(a, 5) + f + e + k + w[i];
            e = d, d = c, c = rotl(b, 30), b = a, a = t;
        }
        h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
    }
    for (int i = 0; i < 20; i++) digest[i] = (unsigned char)(h[i / 4] >> (24 - 8 * (i % 4)));
}

static void base64(const unsigned char *in, size_t len, char *out) {
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < len ? in[i + 2] : 0);
        out[o++] = abc[v >> 18 & 63];
        out[o++] = abc[v >> 12 & 63];
        out[o++] = i + 1 < len ? abc[v >> 6 & 63] : '=';
        out[o++] = i + 2 < len ? abc[v & 63] : '=';
    }
    out[o] = 0;
}

/* Looks for a complete request head in req[0..len). Returns its length and
 * writes the 101 response into reply (*reply_len); 0: incomplete; -1: not an
 * upgrade this server answers (no key, or a head over MAX_HEAD). */
static long upgrade_reply(const char *req, size_t len, char *reply, size_t *reply_len) {
    const char *end = memmem(req, len, "\r\n\r\n", 4);
    if (!end) return len > MAX_HEAD ? -1 : 0;
    size_t head = (size_t)(end - req) + 4;
    static const char name[] = "\r\nsec-websocket-key:";
    for (const char *line = req; line + sizeof name - 1 < end; line++) {
        if (strncasecmp(line, name, sizeof name - 1)) continue;
        const char *key = line + sizeof name - 1;
        while (*key == ' ' || *key == '\t') key++;
        const char *stop_at = memchr(key, '\r', (size_t)(end + 2 - key));
        size_t key_len = (size_t)(stop_at - key);
        while (key_len && (key[key_len - 1] == ' ' || key[key_len - 1] == '\t')) key_len--;
        static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
        unsigned char joined[128], digest[20];
        char accept[32];
        if (key_len == 0 || key_len + sizeof guid - 1 > sizeof joined) return -1;
        memcpy(joined, key, key_len);
        memcpy(joined + key_len, guid, sizeof guid - 1);
        sha1(joined, key_len + sizeof guid - 1, digest);
        base64(digest, 20, accept);
        *reply_len = (size_t)sprintf(reply,
                                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                                     accept);
        return (long)head;
    }
    return -1;
}

/* ------------------------------------------------------------ frames */

static void unmask(unsigned char *p, size_t n, const unsigned char key[4]) {
    uint32_t k4;
    memcpy(&k4, key, 4);
    uint64_t k8 = (uint64_t)k4 << 32 | k4;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) { /* the compiler widens this loop further */
        uint64_t v;
        memcpy(&v, p + i, 8);
        v ^= k8;
        memcpy(p + i, &v, 8);
    }
    for (; i < n; i++) p[i] ^= key[i & 3];
}

enum echo_result { ECHO_MORE, ECHO_CLOSE, ECHO_FAIL };

/* Turns the whole masked frames at the start of buf[0..len) into their
 * unmasked echoes, in place. A server header is 4 bytes shorter than the
 * client's, so each echo header goes over the end of the client's header,
 * and the echoes are packed one after another: they never overtake a frame
 * still to be read. *used: the bytes of whole frames read (a frame cut at the
 * end is left alone); the echo is buf[*out_at .. *out_at + *out_len).
 * ECHO_CLOSE: a close frame was echoed (nothing after it is read);
 * ECHO_FAIL: a frame an echo benchmark never sends. */
static enum echo_result echo_frames(unsigned char *buf, size_t len, size_t *used, size_t *out_at, size_t *out_len) {
    size_t at = 0, out_start = 0, out_end = 0;
    int have_out = 0;
    enum echo_result result = ECHO_MORE;
    while (len - at >= 2) {
        unsigned char *frame = buf + at;
        unsigned char first = frame[0], opcode = first & 15;
        if (!(frame[1] & 0x80) || (first & 0x70) || (opcode > 2 && opcode < 8) || opcode > 10) return ECHO_FAIL;
        uint64_t payload_len = frame[1] & 127;
        size_t head = 2;
        if (payload_len == 126) {
            if (len - at < 4) break;
            payload_len = (uint64_t)frame[2] << 8 | frame[3];
            head = 4;
        } else if (payload_len == 127) {
            if (len - at < 10) break;
            payload_len = 0;
            for (int i = 0; i < 8; i++) payload_len = payload_len << 8 | frame[2 + i];
            head = 10;
        }
        if (payload_len > MAX_FRAME || (opcode >= 8 && (payload_len > 125 || !(first & 0x80)))) return ECHO_FAIL;
        if (len - at < head + 4 + payload_len) break;
        unsigned char *payload = frame + head + 4;
        unmask(payload, payload_len, frame + head);
        at += head + 4 + payload_len;
        if (opcode == 10) continue; /* a pong answers nothing */
        unsigned char *echo = payload - head;
        echo[0] = (unsigned char)((first & 0xF0) | (opcode == 9 ? 10 : opcode));
        if (head == 2) echo[1] = (unsigned char)payload_len;
        else if (head == 4) echo[1] = 126, echo[2] = (unsigned char)(payload_len >> 8), echo[3] = (unsigned char)payload_len;
        else {
            echo[1] = 127;
            for (int i = 0; i < 8; i++) echo[2 + i] = (unsigned char)(payload_len >> (56 - 8 * i));
        }
        size_t n = head + payload_len;
        if (!have_out) out_start = (size_t)(echo - buf), out_end = out_start + n, have_out = 1;
        else memmove(buf + out_end, echo, n), out_end += n;
        if (opcode == 8) {
            result = ECHO_CLOSE;
            break;
        }
    }
    *used = at;
    *out_at = out_start;
    *out_len = out_end - out_start;
    return result;
}

/* ------------------------------------------------------------ connections */

/* One pending send: from a ring buffer (bid >= 0, given back when sent),
 * from a heap block (heap, freed when sent), or from the connection's reply. */
struct out {
    struct out *next;
    unsigned char *data;
    size_t at, len;
    int bid;
    unsigned char *heap;
};

struct conn {
    unsigned char upgraded;
    unsigned char closing;   /* a close frame was echoed: close once it is sent */
    unsigned char dead;      /* the peer is gone or failed: no more sends */
    unsigned char recv_live; /* uring: the multishot recv is armed */
    unsigned char starved;   /* uring: the recv stopped for want of buffers */
    unsigned char send_live; /* uring: `cur` is in flight; epoll: `cur` waits for EPOLLOUT */
    unsigned char shut;      /* uring: shut down, waiting for its ops to end */
    struct out cur;
    struct out *queue, *queue_tail;
    unsigned char *carry; /* bytes of a cut frame (or of the request head), waiting for the rest */
    size_t carry_len, carry_cap;
    char reply[160];
};

static struct conn *conns;
static int max_fd;

static int carry_append(struct conn *c, const unsigned char *p, size_t n) {
    if (c->carry_len + n > MAX_FRAME + 16) return -1;
    if (c->carry_len + n > c->carry_cap) {
        size_t cap = c->carry_cap ? c->carry_cap : 4096;
        while (cap < c->carry_len + n) cap *= 2;
        unsigned char *grown = realloc(c->carry, cap);
        if (!grown) return -1;
        c->carry = grown, c->carry_cap = cap;
    }
    memcpy(c->carry + c->carry_len, p, n);
    c->carry_len += n;
    return 0;
}

/* Takes the carry's block out of the connection (for a send to own) and keeps
 * its bytes from `keep_from` on in a fresh carry. */
static unsigned char *carry_take(struct conn *c, size_t keep_from) {
    unsigned char *block = c->carry;
    size_t rest = c->carry_len - keep_from;
    c->carry = NULL, c->carry_len = 0, c->carry_cap = 0;
    if (rest && carry_append(c, block + keep_from, rest)) c->dead = 1;
    return block;
}

static void carry_drop(struct conn *c, size_t n) {
    memmove(c->carry, c->carry + n, c->carry_len - n);
    c->carry_len -= n;
}

static int listener(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t addr_len = sizeof addr;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) || bind(fd, (void *)&addr, sizeof addr) ||
        listen(fd, 4096) || getsockname(fd, (void *)&addr, &addr_len)) {
        fprintf(stderr, "floor: cannot listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
        exit(1);
    }
    return fd;
}

static void announce(int fd, const char *how) {
    struct sockaddr_in addr;
    socklen_t len = sizeof addr;
    getsockname(fd, (void *)&addr, &len);
    fprintf(stderr, "floor: listening on http://127.0.0.1:%d (%s)\n", ntohs(addr.sin_port), how);
}

static void set_nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* What the connection does with the bytes it received, shared by both loops:
 * the handshake, then echoes. Output goes to `send_fn`, which either takes the
 * block it is given (heap != NULL, a carry block) or sends from `data` at once
 * and copies what it cannot (epoll) / owns the ring buffer `bid` (uring). */
typedef void (*send_fn)(int fd, struct conn *c, unsigned char *data, size_t len, int bid, unsigned char *heap);

/* The carry holds bytes: finish the handshake, or echo the whole frames in it. */
static void serve_carry(int fd, struct conn *c, send_fn send_out) {
    if (!c->upgraded) {
        size_t reply_len;
        long head = upgrade_reply((const char *)c->carry, c->carry_len, c->reply, &reply_len);
        if (head == 0) return;
        if (head < 0) {
            c->dead = 1;
            return;
        }
        c->upgraded = 1;
        carry_drop(c, (size_t)head);
        send_out(fd, c, (unsigned char *)c->reply, reply_len, -1, NULL);
        if (!c->carry_len) return;
    }
    size_t used, out_at, out_len;
    enum echo_result r = echo_frames(c->carry, c->carry_len, &used, &out_at, &out_len);
    if (r == ECHO_FAIL) {
        c->dead = 1;
        return;
    }
    if (r == ECHO_CLOSE) c->closing = 1, used = c->carry_len;
    if (out_len) {
        unsigned char *block = carry_take(c, used);
        send_out(fd, c, block + out_at, out_len, -1, block);
    } else if (used) {
        carry_drop(c, used);
    }
}

/* Bytes p[0..n) just received (in ring buffer `bid`, or -1 for epoll's shared
 * buffer): echoed in place when nothing is carried, else carried. Returns 1
 * when the echo took the ring buffer, 0 when the caller still owns it. */
static int serve(int fd, struct conn *c, unsigned char *p, size_t n, int bid, send_fn send_out) {
    if (!c->upgraded || c->carry_len) {
        receives_copied += c->upgraded;
        if (carry_append(c, p, n)) c->dead = 1;
        else serve_carry(fd, c, send_out);
        return 0;
    }
    size_t used, out_at, out_len;
    enum echo_result r = echo_frames(p, n, &used, &out_at, &out_len);
    if (r == ECHO_FAIL) {
        c->dead = 1;
        return 0;
    }
    if (r == ECHO_CLOSE) c->closing = 1;
    else if (used < n) {
        receives_copied++;
        if (carry_append(c, p + used, n - used)) c->dead = 1;
    }
    if (!out_len) return 0;
    send_out(fd, c, p + out_at, out_len, bid, NULL);
    return bid >= 0;
}

static void reset_conn(struct conn *c) {
    free(c->carry);
    memset(c, 0, sizeof *c);
}

/* ------------------------------------------------------------ io_uring */

enum { OP_ACCEPT = 1, OP_RECV, OP_SEND };
static struct io_uring ring;
static struct io_uring_buf_ring *buf_ring;
static unsigned char *buffers;
static int buffers_returned; /* added to the ring this turn, published at its end */
static int *starved, starved_count;

static struct io_uring_sqe *next_sqe(void) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    if (!sqe) {
        io_uring_submit(&ring);
        sqe = io_uring_get_sqe(&ring);
    }
    return sqe;
}

static void give_back(int bid) {
    io_uring_buf_ring_add(buf_ring, buffers + (size_t)bid * BUF_SIZE, BUF_SIZE, (unsigned short)bid,
                          io_uring_buf_ring_mask(BUF_COUNT), buffers_returned++);
}

static void arm_accept(int listen_fd) {
    struct io_uring_sqe *sqe = next_sqe();
    io_uring_prep_multishot_accept(sqe, listen_fd, NULL, NULL, 0);
    io_uring_sqe_set_data64(sqe, (uint64_t)OP_ACCEPT << 32 | (uint32_t)listen_fd);
}

static void arm_recv(int fd) {
    struct io_uring_sqe *sqe = next_sqe();
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BUF_GROUP;
    io_uring_sqe_set_data64(sqe, (uint64_t)OP_RECV << 32 | (uint32_t)fd);
    conns[fd].recv_live = 1;
}

static void submit_send(int fd, struct conn *c) {
    struct io_uring_sqe *sqe = next_sqe();
    io_uring_prep_send(sqe, fd, c->cur.data + c->cur.at, c->cur.len - c->cur.at, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, (uint64_t)OP_SEND << 32 | (uint32_t)fd);
    c->send_live = 1;
}

static void release(struct out *o) {
    if (o->bid >= 0) give_back(o->bid);
    free(o->heap);
}

static void uring_send(int fd, struct conn *c, unsigned char *data, size_t len, int bid, unsigned char *heap) {
    struct out o = {NULL, data, 0, len, bid, heap};
    if (c->dead) {
        release(&o);
        return;
    }
    if (!c->send_live) {
        c->cur = o;
        submit_send(fd, c);
        return;
    }
    struct out *queued = malloc(sizeof *queued);
    if (!queued) {
        release(&o);
        c->dead = 1;
        return;
    }
    *queued = o;
    if (c->queue_tail) c->queue_tail->next = queued;
    else c->queue = queued;
    c->queue_tail = queued;
}

/* Ends a connection once nothing of it is in flight: a dead or closing one is
 * shut down (which ends its recv), then closed when its last op completes. */
static void uring_settle(int fd, struct conn *c) {
    if (c->dead) {
        for (struct out *o = c->queue, *next; o; o = next) next = o->next, release(o), free(o);
        c->queue = c->queue_tail = NULL;
    }
    if (!(c->dead || (c->closing && !c->send_live && !c->queue))) return;
    if (c->recv_live || c->send_live) {
        if (!c->shut) shutdown(fd, SHUT_RDWR), c->shut = 1;
        return;
    }
    if (c->starved) return; /* still listed; forgotten at the end of the turn */
    reset_conn(c);
    close(fd);
}

static void on_recv(int fd, struct io_uring_cqe *cqe) {
    struct conn *c = &conns[fd];
    int more = cqe->flags & IORING_CQE_F_MORE;
    if (!more) c->recv_live = 0;
    if (cqe->res > 0) {
        int bid = (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        unsigned char *p = buffers + (size_t)bid * BUF_SIZE;
        if (c->dead || c->closing || !serve(fd, c, p, (size_t)cqe->res, bid, uring_send)) give_back(bid);
        if (!more && !c->dead && !c->closing) arm_recv(fd);
    } else if (cqe->res == -ENOBUFS) {
        if (!c->dead && !c->closing && !c->starved) c->starved = 1, starved[starved_count++] = fd;
    } else {
        c->dead = 1;
    }
    uring_settle(fd, c);
}

static void on_send(int fd, struct io_uring_cqe *cqe) {
    struct conn *c = &conns[fd];
    c->send_live = 0;
    if (cqe->res < 0) {
        release(&c->cur);
        c->dead = 1;
    } else if ((c->cur.at += (size_t)cqe->res) < c->cur.len && !c->dead) {
        submit_send(fd, c); /* the kernel took part of it */
    } else {
        release(&c->cur);
        if (c->queue && !c->dead) {
            struct out *next = c->queue;
            c->queue = next->next;
            if (!c->queue) c->queue_tail = NULL;
            c->cur = *next;
            free(next);
            submit_send(fd, c);
        }
    }
    uring_settle(fd, c);
}

static void run_uring(int port) {
    struct io_uring_params params = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
                                              IORING_SETUP_CQSIZE,
                                     .cq_entries = 32768};
    int err = io_uring_queue_init_params(4096, &ring, &params);
    if (err) {
        fprintf(stderr, "floor: io_uring_queue_init: %s\n", strerror(-err));
        exit(1);
    }
    size_t ring_bytes = BUF_COUNT * sizeof(struct io_uring_buf);
    buf_ring = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)buf_ring, .ring_entries = BUF_COUNT,
                                   .bgid = BUF_GROUP};
    if (buf_ring == MAP_FAILED || (err = io_uring_register_buf_ring(&ring, &reg, 0))) {
        fprintf(stderr, "floor: cannot register the buffer ring: %s\n", strerror(err ? -err : errno));
        exit(1);
    }
    io_uring_buf_ring_init(buf_ring);
    buffers = aligned_alloc(4096, (size_t)BUF_COUNT * BUF_SIZE);
    starved = calloc((size_t)max_fd, sizeof *starved);
    if (!buffers || !starved) exit(1);
    for (int bid = 0; bid < BUF_COUNT; bid++) give_back(bid);
    io_uring_buf_ring_advance(buf_ring, buffers_returned);
    buffers_returned = 0;

    int listen_fd = listener(port);
    char how[96];
    snprintf(how, sizeof how, "io_uring, %d buffers of %d B", BUF_COUNT, BUF_SIZE);
    announce(listen_fd, how);
    arm_accept(listen_fd);
    while (!stop) {
        err = io_uring_submit_and_wait(&ring, 1);
        if (err < 0 && err != -EINTR && err != -ETIME && err != -EBUSY) {
            fprintf(stderr, "floor: io_uring_submit_and_wait: %s\n", strerror(-err));
            exit(1);
        }
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            seen++;
            int op = (int)(cqe->user_data >> 32), fd = (int)(uint32_t)cqe->user_data;
            if (op == OP_ACCEPT) {
                if (cqe->res >= 0 && cqe->res < max_fd) {
                    set_nodelay(cqe->res);
                    arm_recv(cqe->res);
                } else if (cqe->res >= 0) {
                    close(cqe->res);
                }
                if (!(cqe->flags & IORING_CQE_F_MORE)) arm_accept(fd);
            } else if (op == OP_RECV) {
                on_recv(fd, cqe);
            } else if (op == OP_SEND) {
                on_send(fd, cqe);
            }
        }
        io_uring_cq_advance(&ring, seen);
        if (buffers_returned) {
            io_uring_buf_ring_advance(buf_ring, buffers_returned);
            buffers_returned = 0;
            int waiting = starved_count;
            starved_count = 0;
            for (int i = 0; i < waiting; i++) {
                int fd = starved[i];
                struct conn *c = &conns[fd];
                c->starved = 0;
                if (!c->dead && !c->closing) arm_recv(fd);
                uring_settle(fd, c);
            }
        }
    }
    /* The ring's pending accept holds the listener past exit (the ring is torn
     * down in the background): stop listening now, so the port is free at once. */
    shutdown(listen_fd, SHUT_RDWR);
}

/* ------------------------------------------------------------ epoll */

static int epoll_fd;

static void epoll_watch(int fd, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.fd = fd};
    epoll_ctl(epoll_fd, EPOLL_CTL_MOD, fd, &ev);
}

/* Sends at once; what the kernel does not take is copied and waits for EPOLLOUT. */
static void epoll_send(int fd, struct conn *c, unsigned char *data, size_t len, int bid, unsigned char *heap) {
    (void)bid;
    if (c->dead) {
        free(heap);
        return;
    }
    ssize_t sent = 0;
    if (!c->send_live) {
        sent = send(fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (sent < 0 && errno != EAGAIN) c->dead = 1;
        if (sent < 0) sent = 0;
    }
    if (!c->dead && (size_t)sent < len) {
        size_t rest = len - (size_t)sent, pending = c->send_live ? c->cur.len - c->cur.at : 0;
        unsigned char *block = malloc(pending + rest);
        if (!block) c->dead = 1;
        else {
            if (pending) memcpy(block, c->cur.data + c->cur.at, pending);
            memcpy(block + pending, data + sent, rest);
            free(c->cur.heap);
            c->cur = (struct out){NULL, block, 0, pending + rest, -1, block};
            if (!c->send_live) epoll_watch(fd, EPOLLOUT);
            c->send_live = 1;
        }
    }
    free(heap);
}

static void epoll_drop(int fd, struct conn *c) {
    free(c->cur.heap);
    reset_conn(c);
    close(fd);
}

static void epoll_flush(int fd, struct conn *c) {
    ssize_t sent = send(fd, c->cur.data + c->cur.at, c->cur.len - c->cur.at, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent < 0 && errno != EAGAIN) c->dead = 1;
    else if (sent > 0 && (c->cur.at += (size_t)sent) == c->cur.len) {
        free(c->cur.heap);
        memset(&c->cur, 0, sizeof c->cur);
        c->send_live = 0;
        epoll_watch(fd, EPOLLIN);
    }
}

static void run_epoll(int port) {
    static unsigned char shared_buffer[EPOLL_READ_SIZE];
    int listen_fd = listener(port);
    epoll_fd = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = listen_fd}, events[256];
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listen_fd, &ev);
    announce(listen_fd, "epoll, one 64 KiB receive buffer");
    while (!stop) {
        int ready = epoll_wait(epoll_fd, events, 256, -1);
        for (int i = 0; i < ready; i++) {
            int fd = events[i].data.fd;
            if (fd == listen_fd) {
                int client;
                while ((client = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (client >= max_fd) {
                        close(client);
                        continue;
                    }
                    set_nodelay(client);
                    struct epoll_event in = {.events = EPOLLIN, .data.fd = client};
                    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, client, &in);
                }
                continue;
            }
            struct conn *c = &conns[fd];
            if (c->send_live) epoll_flush(fd, c);
            else {
                ssize_t n = recv(fd, shared_buffer, sizeof shared_buffer, 0);
                if (n > 0) serve(fd, c, shared_buffer, (size_t)n, -1, epoll_send);
                else if (n == 0 || errno != EAGAIN) c->dead = 1;
            }
            if (c->dead || (c->closing && !c->send_live)) epoll_drop(fd, c);
        }
    }
}

/* ------------------------------------------------------------ main */

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv) {
    char *end = NULL;
    long port = argc == 3 ? strtol(argv[2], &end, 10) : -1;
    int uring = argc == 3 && !strcmp(argv[1], "uring"), epoll = argc == 3 && !strcmp(argv[1], "epoll");
    if (!(uring || epoll) || !end || *end || end == argv[2] || port < 0 || port > 65535) {
        fprintf(stderr, "usage: floor uring|epoll PORT   (127.0.0.1; PORT 0 picks a free port)\n");
        return 2;
    }
    struct rlimit files;
    if (!getrlimit(RLIMIT_NOFILE, &files)) {
        files.rlim_cur = files.rlim_max;
        setrlimit(RLIMIT_NOFILE, &files);
        getrlimit(RLIMIT_NOFILE, &files);
    }
    max_fd = files.rlim_cur > 1 << 20 ? 1 << 20 : (int)files.rlim_cur;
    conns = calloc((size_t)max_fd, sizeof *conns);
    if (!conns) return 1;
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: the wait returns EINTR */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (uring) run_uring((int)port);
    else run_epoll((int)port);
    fprintf(stderr, "floor: stopped; receives copied (a frame cut by a receive boundary): %llu\n", receives_copied);
    return 0;
}
