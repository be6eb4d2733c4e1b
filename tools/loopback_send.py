#!/usr/bin/env python3
"""tools/loopback_send.py: what one small TCP send costs on this machine when its reader is
another process on loopback: the floor under a gateway worker, which writes each event to the
owner's own socket (one `send` per event and device). A bare sender holds N connections to a
reader process (one epoll loop, as corecast-load), sends RATE messages per second of SIZE bytes
to random connections (the due sends every 1 ms, TCP_NODELAY, as corecast), and prints one JSON
line with its user and system CPU time per send. On loopback the kernel runs the reader's TCP
receive path (and its wake-up) in the sender's `send`, so that time is the sender's.

Only 127.0.0.1; bounded by --secs. Usage: tools/loopback_send.py [-n 10000] [--rate 10000]
[--size 170] [--secs 10]
"""
import argparse, json, os, random, resource, select, socket, sys, time

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("-n", type=int, default=10000, help="connections (1..20000)")
p.add_argument("--rate", type=float, default=10000, help="sends per second (1..200000)")
p.add_argument("--size", type=int, default=170, help="bytes per send (1..65536)")
p.add_argument("--secs", type=float, default=10, help="seconds of sending (0..600]")
a = p.parse_args()
if not (1 <= a.n <= 20000 and 1 <= a.rate <= 200000 and 1 <= a.size <= 65536 and 0 < a.secs <= 600):
    sys.exit("loopback_send: argument out of range")

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, a.n + 1000)), hard))
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(4096)
port = listener.getsockname()[1]
done_r, done_w = os.pipe()
reader = os.fork()
if reader == 0:
    os.close(done_w)
    ep = select.epoll()
    socks = {}
    for i in range(a.n):
        c = socket.socket()
        c.bind((f"127.0.0.{1 + i % 16}", 0))  # spread the source ports over 16 addresses
        c.connect(("127.0.0.1", port))
        c.setblocking(False)
        socks[c.fileno()] = c
        ep.register(c.fileno(), select.EPOLLIN)
    ep.register(done_r, select.EPOLLIN)
    while True:
        for fd, _ in ep.poll(1.0):
            if fd == done_r:
                os._exit(0)
            try:
                socks[fd].recv(65536)
            except BlockingIOError:
                pass
os.close(done_r)
conns = []
listener.settimeout(60)
for _ in range(a.n):
    c, _ = listener.accept()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conns.append(c)
msg = b"x" * a.size
t0 = time.monotonic()
r0 = resource.getrusage(resource.RUSAGE_SELF)
sent = 0
while True:
    now = time.monotonic() - t0
    if now >= a.secs:
        break
    due = int(now * a.rate) + 1
    while sent < due:
        random.choice(conns).send(msg)
        sent += 1
    time.sleep(0.001)
r1 = resource.getrusage(resource.RUSAGE_SELF)
os.close(done_w)
os.waitpid(reader, 0)
user, system = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
print(json.dumps({
    "tool": "loopback_send", "connections": a.n, "rate": a.rate, "size": a.size,
    "secs": a.secs, "sends": sent,
    "user_us_per_send": round(1e6 * user / max(sent, 1), 2),
    "system_us_per_send": round(1e6 * system / max(sent, 1), 2),
    "loadavg": float(open("/proc/loadavg").read().split()[0]),
}))
