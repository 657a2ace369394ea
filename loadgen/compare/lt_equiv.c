/* lt_equiv: a stand-in for uWebSockets' benchmarks/load_test, written for
 * the loadgen comparison because load_test (and uSockets) cannot be built
 * on the measurement machine. It sends exactly load_test's traffic with
 * the least possible work, so it bounds load_test's speed from above:
 *   - N connections, each upgraded with a fixed handshake,
 *   - one 20 B binary frame in flight per connection, pre-encoded once with
 *     load_test's fixed mask key {1,2,3,4} (loadgen uses a fresh key/frame),
 *   - level-triggered epoll, one recv() per readable event, every data
 *     event counted as one response and answered with one send()
 *     (no parsing, no checks, no timestamps),
 *   - prints msg/s every second for 1 + SECONDS seconds, and the average
 *     over the last SECONDS (the first second is warmup, as in loadgen -w 1),
 *     with its own CPU time (utime + stime, getrusage) per message and as a
 *     share of its core over the same window.
 * Build: cc -O2 -o lt_equiv lt_equiv.c
 * Usage: lt_equiv CONNECTIONS HOST PORT SECONDS [PATH]   (PATH defaults to /) */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <sys/resource.h>
#include <unistd.h>

static const char upgrade_rest[] =
    " HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\nHost: server.example.com\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n";
static unsigned char frame[26] = {130, 128 | 20, 1, 2, 3, 4};

static double cpu_seconds(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: lt_equiv CONNECTIONS HOST PORT SECONDS [PATH]\n");
        return 2;
    }
    char upgrade[1024];
    int upgrade_len = snprintf(upgrade, sizeof upgrade, "GET %s%s", argc == 6 ? argv[5] : "/", upgrade_rest);
    int n = atoi(argv[1]), secs = atoi(argv[4]);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[3]))};
    inet_pton(AF_INET, argv[2], &a.sin_addr);
    int ep = epoll_create1(0);
    static char buf[512 * 1024];
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("connect"); return 1; }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (write(fd, upgrade, upgrade_len) < 0) { perror("write"); return 1; }
        int got = 0;
        while (got < 4 || memcmp(buf + got - 4, "\r\n\r\n", 4)) {
            int r = recv(fd, buf + got, 1, 0);
            if (r <= 0) { fprintf(stderr, "handshake failed\n"); return 1; }
            got += r;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        send(fd, frame, sizeof frame, MSG_NOSIGNAL);
    }
    struct epoll_event evs[1024];
    long responses = 0, total = 0;
    double start = now(), tick = start + 1, measured_from = start + 1, cpu_from = 0;
    for (;;) {
        int k = epoll_wait(ep, evs, 1024, 100);
        for (int i = 0; i < k; i++) {
            int fd = evs[i].data.fd;
            if (recv(fd, buf, sizeof buf, 0) <= 0) { fprintf(stderr, "closed\n"); return 1; }
            send(fd, frame, sizeof frame, MSG_NOSIGNAL);
            responses++;
        }
        double t = now();
        if (t >= tick) {
            printf("Msg/sec: %ld\n", responses);
            fflush(stdout);
            if (tick == measured_from) cpu_from = cpu_seconds();
            if (tick > measured_from) total += responses;
            responses = 0;
            tick += 1;
            if (t - start >= secs + 1) break;
        }
    }
    double elapsed = now() - measured_from, cpu = cpu_seconds() - cpu_from;
    printf("average: %.0f msg/s cpu/msg %.2f us util %.3f\n", total / elapsed,
           total ? cpu / total * 1e6 : 0.0, cpu / elapsed);
    return 0;
}
