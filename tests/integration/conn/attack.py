#!/usr/bin/env python3
"""attack.py - raw-socket clients for the connection-layer attack tests (test_attack_conn*.sh).

  attack.py send PORT FILE           send FILE's bytes, print the whole answer (to EOF, 10 s max)
  attack.py idle PORT N SECONDS      open N connections that send nothing; print how many the
                                     server closed within SECONDS (all of them: then it returns)
  attack.py slow PORT FILE DELAY_MS [FAST]
                                     send FILE's first FAST bytes at once, then one byte per
                                     DELAY_MS until the server closes; print "<bytes sent>
                                     <seconds>" then what it answered
  attack.py bodies PORT N HEADFILE BODYBYTES
                                     N connections each send HEADFILE, then up to BODYBYTES of
                                     body (never completing it); print how many got an answer,
                                     and the status lines seen
Bounds are generous: they matter only when a test fails.
"""
import socket
import sys
import threading
import time


def connect(port):
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=30)
    return s


def read_all(s, limit=10.0):
    s.settimeout(limit)
    out = b""
    end = time.time() + limit
    try:
        while time.time() < end:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except OSError:
        pass
    return out


def cmd_send(port, path):
    data = open(path, "rb").read()
    s = connect(port)
    try:
        s.sendall(data)
    except OSError:
        pass
    sys.stdout.buffer.write(read_all(s))
    s.close()


def cmd_idle(port, n, seconds):
    socks = []
    for _ in range(int(n)):
        socks.append(connect(port))
    closed = 0
    end = time.time() + float(seconds)
    pending = list(socks)
    while pending and time.time() < end:
        still = []
        for s in pending:
            s.settimeout(0.01)
            try:
                d = s.recv(4096)
                if d == b"":
                    closed += 1
                    continue
                # an answer (408): wait for the close itself
                still.append(s)
            except socket.timeout:
                still.append(s)
            except OSError:
                closed += 1
        pending = still
        time.sleep(0.05)
    print(closed)
    for s in socks:
        s.close()


def cmd_slow(port, path, delay_ms, fast="0"):
    data = open(path, "rb").read()
    s = connect(port)
    start = time.time()
    s.sendall(data[: int(fast)])
    sent = int(fast)
    answer = b""
    for b in data[int(fast):]:
        try:
            s.sendall(bytes([b]))
        except OSError:
            break
        sent += 1
        s.settimeout(int(delay_ms) / 1000.0)
        try:
            d = s.recv(65536)
            if d == b"":
                break
            answer += d
        except socket.timeout:
            pass
        except OSError:
            break
    answer += read_all(s, 10.0)
    print(sent, round(time.time() - start, 2))
    sys.stdout.buffer.write(answer)
    s.close()


def cmd_bodies(port, n, headfile, bodybytes):
    head = open(headfile, "rb").read()
    results = [b""] * int(n)

    def one(i):
        try:
            s = connect(port)
            s.sendall(head)
            chunk = b"x" * 65536
            left = int(bodybytes)
            s.settimeout(0.2)
            while left > 0:
                try:
                    sent = s.send(chunk[: min(left, len(chunk))])
                    left -= sent
                except socket.timeout:
                    break
                try:
                    d = s.recv(4096, socket.MSG_DONTWAIT)
                    if d:
                        results[i] = d
                        break
                except (BlockingIOError, socket.timeout):
                    pass
            if not results[i]:
                results[i] = read_all(s, 20.0)
            s.close()
        except OSError as e:
            results[i] = results[i] or ("error " + str(e)).encode()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(int(n))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    answered = sum(1 for r in results if r.startswith(b"HTTP/1.1 "))
    print(answered)
    for r in results:
        print(r.split(b"\r\n", 1)[0].decode(errors="replace"))


if __name__ == "__main__":
    cmds = {"send": cmd_send, "idle": cmd_idle, "slow": cmd_slow, "bodies": cmd_bodies}
    cmds[sys.argv[1]](*sys.argv[2:])
