#!/usr/bin/env python3
"""Writes the seed corpus of the `config` target, fuzz/seeds/config/ (run from fuzz/:
`python3 make_config_seeds.py`).

Each file is a whole `--config` file (see the //! comment of fuzz_targets/config.rs): valid
files that set every flag in each of its forms and the ride-sharing gateway, and one file per
refusal the loader has (syntax, encoding, unknown keys at each level, each wrong type, each
flag parser, each whole-configuration check, each gateway rule). Crash inputs found by the
fuzzer are committed beside them as `crash-*` and are not written here.
"""
import os

SEEDS = {}


def seed(name, text):
    assert name not in SEEDS, name
    SEEDS[name] = text.encode() if isinstance(text, str) else text


AMQP = '[amqp]\nurl = "amqp://h"\nexchange = "trip"\n'

# ---- valid files ----------------------------------------------------------------------------
seed("empty", "")
seed("comments", "# nothing but comments\n\n   # and blank lines\n")
seed(
    "every-flag",
    """listen = "0.0.0.0:9999"
workers = 3
max-frame = "1MiB"
max-message = 2097152
max-head = "16KiB"
ping-interval = "15s"
idle-timeout = "1m 30s"
handshake-timeout = "1500ms"
close-timeout = "2s"
write-stall-timeout = "45s"
drain-timeout = "3s"
max-connections = 5000
send-buffer-limit = "64KiB"
backlog = 128
compression = "dedicated"
compression-level = 6
compression-min-size = 64
history = 250
room-ttl = "1h"
presence-max-members = 50
chat-max-message = "8KiB"
max-rooms = 7
conn-rate = 5
conn-burst = 9
msg-rate = 11
msg-burst = 13
trusted-proxies = "10.0.0.0/8, 192.168.1.1"
allowed-origins = ["https://a.example", "http://localhost:3000"]
jwt-secret = "a secret"
api-key = "a key"
redis-url = "redis://user:pass@redis.local:6380/2"
node-id = "node-a"
redis-prefix = "cc"
inbox-max = 20
inbox-ttl = "2days"
relay-backlog = 500
""",
)
seed(
    "other-forms",
    'trusted-proxies = ["10.0.0.1", "fd00::/8"]\nallowed-origins = "*"\nmax-frame = 1024\n'
    'workers = 0x10\nbacklog = -1\nhistory = 1_000\ncompression = "off"\n'
    'listen = "[::1]:0"\nredis-url = "redis://secret@h"\n',
)
seed(
    "ride-sharing",
    """[amqp]
url = "amqp://guest:guest@127.0.0.1:5672/%2f"
exchange = "trip"                 # topic, durable; declared if absent
bind = ["driver.cmd.trip_request", "trip.event.*"]
owner_field = "ownerId"
data_encoding = "base64"
prefetch = 1000

[[endpoint]]
path = "/ws/drivers"
identity = "query:userID"
roles = ["driver"]
upstream = ["driver.cmd.trip_accept", "driver.cmd.trip_decline"]
lifecycle = true

[[endpoint]]
path = "/ws/riders"
identity = "query:userID"
upstream = []
""",
)
seed(
    "gateway-jwt",
    'jwt-secret = "0123456789abcdef0123456789abcdef"\nredis-url = "redis://h"\n'
    + AMQP
    + 'store_offline = true\ndata_encoding = "json"\nbind = ["#", "a.*.#.b"]\n'
    'dead_letter_exchange = "trip.dlx"\n'
    '[[endpoint]]\npath = "/e"\n[[endpoint]]\npath = "/f"\nidentity = "jwt"\n'
    'upstream = ["x.#"]\nroles = ["r1", "r2"]\n',
)
seed("inline-endpoints", 'endpoint = [{path = "/x", identity = "query:u"}]\n' + AMQP)
seed("dotted-amqp", 'amqp.url = "amqp://h"\namqp.exchange = "x"\namqp.prefetch = 65535\n')
seed("strings-escaped", AMQP + 'owner_field = "own\\u00e9r \\"id\\" \\\\"\n')
seed("literal-strings", "listen = '127.0.0.1:1'\nroom-ttl = '''\n5m'''\n")

# ---- refusals: file level -------------------------------------------------------------------
seed("not-utf8", b'history = 1\nnode-id = "\xff\xfe"\n')
seed("bom", b"\xef\xbb\xbfhistory = 1\n")
seed("syntax-duplicate", "history = 1\nhistory = 2\n")
seed("syntax-unquoted", "listen = 0.0.0.0:80\n")
seed("syntax-unclosed", 'listen = "abc\n')
seed("syntax-header", "[amqp\nurl = 1\n")
seed("syntax-table-twice", AMQP + "[amqp]\n")
seed("deep-nesting", "history = " + "[" * 300 + "]" * 300 + "\n")

# ---- refusals: keys -------------------------------------------------------------------------
seed("unknown-top", "histroy = 1\n")
seed("unknown-underscore", "max_rooms = 1\n")
seed("unknown-plural", '[[endpoints]]\npath = "/x"\n')
seed("unknown-config", 'config = "other.toml"\n')
seed("unknown-print-config", "print-config = true\n")
seed("unknown-amqp", AMQP + "owner-field = 1\n")
seed("unknown-endpoint", AMQP + '[[endpoint]]\npath = "/x"\n"two words" = 1\n')
seed("unknown-control", '"a\\nb" = 1\n')
seed("dotted-flag", "listen.port = 1\n")

# ---- refusals: types ------------------------------------------------------------------------
seed("type-int-string", 'history = "200"\n')
seed("type-int-float", "history = 1.5\n")
seed("type-int-overflow", "history = 9223372036854775808\n")
seed("type-str-int", "listen = 8080\n")
seed("type-duration-int", "room-ttl = 600\n")
seed("type-size-bool", "max-frame = true\n")
seed("type-list-date", "allowed-origins = 1979-05-27T07:32:00Z\n")
seed("type-list-item", 'allowed-origins = ["https://a", 2]\n')
seed("type-amqp-int", "amqp = 1\n")
seed("type-endpoint-table", '[endpoint]\npath = "/x"\n')
seed("type-endpoint-item", "endpoint = [1]\n")
seed("type-prefetch", AMQP + 'prefetch = "5"\n')
seed("type-store-offline", AMQP + 'store_offline = "yes"\n')
seed("type-bind", AMQP + 'bind = "a.b"\n')
seed("type-bind-nested", AMQP + 'bind = [["a"]]\n')
seed("type-lifecycle", AMQP + '[[endpoint]]\npath = "/x"\nlifecycle = 1\n')
seed("type-roles", AMQP + '[[endpoint]]\npath = "/x"\nroles = [1]\n')

# ---- refusals: a flag's own parser ----------------------------------------------------------
seed("value-size-unit", 'max-frame = "2 parsecs"\n')
seed("value-size-overflow", 'max-frame = "99999999999999999999G"\n')
seed("value-negative", "history = -1\n")
seed("value-u8", "compression-level = 300\n")
seed("value-mode", 'compression = "fast"\n')
seed("value-listen", 'listen = "nope"\n')
seed("value-duration", 'room-ttl = "600"\n')
seed("value-empty", 'listen = ""\n')
seed("value-list-comma", 'trusted-proxies = ["10.0.0.1,10.0.0.2"]\n')
seed("value-list-empty", 'allowed-origins = [" "]\n')

# ---- refusals: whole-configuration checks ---------------------------------------------------
seed("check-history", "max-rooms = 5\nhistory = 2000000\n")
seed("check-workers", "workers = 0\n")
seed("check-zero-size", "max-frame = 0\n")
seed("check-level", "compression-level = 12\n")
seed("check-idle-ping", 'history = 1\nidle-timeout = "10s"\nping-interval = "20s"\n')
seed("check-timeout-zero", 'close-timeout = "0s"\n')
seed("check-timeout-huge", 'drain-timeout = "100days"\n')
seed("check-secret-empty", 'jwt-secret = ""\n')
seed("check-node-id", 'node-id = "has space"\n')
seed("check-rate", "msg-rate = 70000\n")
seed("check-proxies", 'trusted-proxies = ["10.0.0.0/33"]\n')
seed("check-origins", 'allowed-origins = "https://a/"\n')
seed("check-origins-empty", "allowed-origins = []\n")
seed("check-redis-url", 'redis-url = "http://h"\n')

# ---- refusals: gateway ----------------------------------------------------------------------
seed("amqp-missing-url", '[amqp]\nexchange = "x"\n')
seed("amqp-missing-exchange", '\n[amqp]\nurl = "amqp://h"\n')
seed("amqp-amqps", '[amqp]\nurl = "amqps://h"\nexchange = "x"\n')
seed("amqp-scheme", '[amqp]\nurl = "redis://h"\nexchange = "x"\n')
seed("amqp-port", '[amqp]\nurl = "amqp://h:99999"\nexchange = "x"\n')
seed("amqp-escape", '[amqp]\nurl = "amqp://h/%zz"\nexchange = "x"\n')
seed("amqp-exchange-reserved", '[amqp]\nurl = "amqp://h"\nexchange = "amq.topic"\n')
seed("amqp-exchange-chars", '[amqp]\nurl = "amqp://h"\nexchange = "a b"\n')
seed("amqp-heartbeat", '[amqp]\nurl = "amqp://h?heartbeat=x"\nexchange = "x"\n')
seed("amqp-dlx-default", AMQP + 'dead_letter_exchange = ""\n')
seed("amqp-dlx-reserved", AMQP + 'dead_letter_exchange = "amq.direct"\n')
seed("amqp-prefetch-zero", AMQP + "prefetch = 0\n")
seed("amqp-prefetch-big", AMQP + "prefetch = 65536\n")
seed("amqp-encoding", AMQP + 'data_encoding = "hex"\n')
seed("amqp-owner-empty", AMQP + 'owner_field = ""\n')
seed("amqp-store-no-redis", AMQP + "store_offline = true\n")
seed("pattern-empty", AMQP + 'bind = [""]\n')
seed("pattern-empty-word", AMQP + 'bind = ["ok", "a..b"]\n')
seed("pattern-wildcard", AMQP + 'bind = ["trip*"]\n')
seed("pattern-control", AMQP + 'bind = ["a\\tb"]\n')
seed("pattern-long", AMQP + 'bind = ["' + "a" * 256 + '"]\n')
seed("pattern-255", AMQP + 'bind = ["' + "a." * 127 + 'b"]\n')
seed("endpoint-no-amqp", '\n[[endpoint]]\npath = "/e"\nidentity = "query:u"\n')
seed("endpoint-no-identity", AMQP + '[[endpoint]]\npath = "/e"\n')
seed("endpoint-jwt-no-secret", AMQP + '[[endpoint]]\npath = "/e"\nidentity = "jwt"\n')
seed("endpoint-identity-bad", AMQP + '[[endpoint]]\npath = "/e"\nidentity = "query:a b"\n')
seed("endpoint-missing-path", AMQP + '[[endpoint]]\nidentity = "jwt"\n')
seed("endpoint-path-relative", AMQP + '[[endpoint]]\npath = "ws"\n')
seed("endpoint-path-reserved", AMQP + '[[endpoint]]\npath = "/api/x"\n')
seed("endpoint-path-query", AMQP + '[[endpoint]]\npath = "/a?b=1"\n')
seed(
    "endpoint-path-duplicate",
    AMQP + '[[endpoint]]\npath = "/x"\n\n[[endpoint]]\npath = "/y"\n[[endpoint]]\npath = "/x"\n',
)
seed("endpoint-role-empty", AMQP + '[[endpoint]]\npath = "/a"\nroles = [""]\n')
seed("endpoint-upstream-bad", AMQP + '[[endpoint]]\npath = "/a"\nupstream = ["a.#x"]\n')
seed("endpoint-subtable", AMQP + '[[endpoint]]\npath = "/a"\n[endpoint.x]\ny = 1\n')

os.makedirs("seeds/config", exist_ok=True)
for name, data in SEEDS.items():
    with open(f"seeds/config/{name}", "wb") as f:
        f.write(data)
print(f"{len(SEEDS)} seeds in seeds/config/")
