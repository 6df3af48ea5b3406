#!/usr/bin/env python3
"""Writes the hand-made seed corpus in Fuzz/corpus/<target>/ (docs/fuzzing.md).

The seeds are committed; run this again after changing it. Each target's input layout is
described in its Fuzz/ChorusFuzz/<Target>Target.swift.
"""
import base64, hashlib, hmac, json, os, struct, zlib

here = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    directory = os.path.join(here, "corpus", target)
    os.makedirs(directory, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


# frames: two bytes choose the size limit (0xFFFF: 1 MiB, else 1 + n % 4096), one byte seeds the
# split points, the rest is the stream.
MASK = bytes([0x37, 0xFA, 0x21, 0x3D])


def frame(opcode, payload=b"", fin=True, masked=True, rsv=0, length=None, wide=False):
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    bit = 0x80 if masked else 0
    if wide:  # a 64-bit length however small (RFC 6455 asks for the minimal encoding)
        head += bytes([bit | 127]) + struct.pack(">Q", n)
    elif n < 126:
        head += bytes([bit | n])
    elif n <= 0xFFFF:
        head += bytes([bit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([bit | 127]) + struct.pack(">Q", n)
    if masked:
        head += MASK
        payload = bytes(b ^ MASK[i & 3] for i, b in enumerate(payload))
    return head + payload


def frames(name, stream, limit=0xFFFF, seed=7):
    write("frames", name, struct.pack(">HB", limit, seed) + stream)


msg = b'{"type":"message","topic":"chat.room-1","data":{"text":"hi"}}'
frames("text", frame(1, msg))
frames("binary", frame(2, bytes(range(40))))
frames("ping-pong", frame(9, b"are you there") + frame(10, b"yes"))
frames("close", frame(8, struct.pack(">H", 1000) + b"bye"))
frames("fragmented", frame(1, b'{"type":', fin=False) + frame(0, b'"ping"}'))
frames("ping-between-fragments", frame(1, b"ab", fin=False) + frame(9, b"p") + frame(0, b"cd"))
frames("length-126", frame(1, b"x" * 300))
frames("length-127-non-minimal", frame(2, b"y" * 10, wide=True))
frames("too-big-126", frame(1, b"z" * 200), limit=99)
frames("too-big-127", frame(2, b"", length=1 << 40)[:14], limit=99)
frames("msb-length", frame(2, b"", length=1 << 63)[:14])
frames("unmasked", frame(1, b"hello", masked=False))
frames("reserved-bits", frame(1, b"hello", rsv=0x40))
frames("unknown-opcode", frame(3, b"?"))
frames("lonely-continuation", frame(0, b"more"))
frames("new-message-mid-fragment", frame(1, b"a", fin=False) + frame(1, b"b"))
frames("fragmented-control", frame(9, b"p", fin=False))
frames("long-control", frame(9, b"p" * 126))
frames("many-fragments", frame(1, b"a", fin=False) + b"".join(frame(0, b"b", fin=False) for _ in range(1100)) + frame(0, b"c"))
frames("fragments-over-limit", frame(1, b"a" * 60, fin=False) + frame(0, b"b" * 60), limit=99)
frames("empty-frames", frame(1) + frame(2) + frame(9) + frame(8))
frames("partial-header", frame(1, b"x" * 300)[:3])
frames("partial-payload", frame(1, b"hello world")[:9])
frames("many-small", b"".join(frame(1, b'{"type":"ping"}') for _ in range(20)), seed=3)
frames("non-minimal-length", bytes([0x81, 0x80 | 126, 0, 5]) + MASK + bytes(b ^ MASK[i & 3] for i, b in enumerate(b"hello")))
frames("utf8-invalid-text", frame(1, b"\xff\xfe\xc3"))


# frames, the stream as it is with permessage-deflate agreed (seed byte odd: context takeover).
def raw_deflate(data, final=False):
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = compressor.compress(data) + compressor.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH)
    return out if final else out[:-4]


frames("rsv1-deflated", frame(1, raw_deflate(msg), rsv=0x40) + frame(9, b"p") + frame(2, raw_deflate(bytes(range(40))), rsv=0x40), seed=8)
frames("rsv1-deflated-takeover", frame(1, raw_deflate(msg), rsv=0x40) + frame(1, raw_deflate(msg), rsv=0x40), seed=9)
frames("rsv1-deflated-fragmented", frame(1, raw_deflate(msg)[:5], rsv=0x40, fin=False) + frame(0, raw_deflate(msg)[5:]), seed=8)
frames("rsv1-on-continuation", frame(1, b"a", fin=False) + frame(0, b"b", rsv=0x40), seed=8)


# frames, compressed mode (selector 0x8000 | limit - 1): a seed byte, a configuration byte
# (bit 0 context takeover, bits 1-2 level 0/1/6/9, bits 3-5 window 2^9..2^15), then messages:
# a header byte (bit 0 text, 1 compressed, 2-3 fragments - 1, 4 a ping, 5 final block, 7 length
# in 32 bytes), a length byte, the data. FramesTarget.swift's DeflateMode.
def deflate_frames(name, messages, limit=4096, seed=5, takeover=True, level=2, window=6):
    config = (1 if takeover else 0) | level << 1 | window << 3
    body = b""
    for header, data in messages:
        length = len(data) // 32 if header & 0x80 else len(data)
        assert length < 256
        body += bytes([header, length]) + data[:length * 32 if header & 0x80 else length]
    write("frames", name, struct.pack(">HBB", 0x8000 | (limit - 1), seed, config) + body)


chat_text = b'{"type":"message","topic":"chat.lobby","data":{"text":"the deploy is done"}}'
deflate_frames("deflate-takeover", [(0x03, chat_text), (0x03, chat_text), (0x02, bytes(range(200))), (0x01, b"plain")])
deflate_frames("deflate-no-takeover", [(0x03, chat_text), (0x03, chat_text), (0x0F, chat_text)], takeover=False)
deflate_frames("deflate-fragments-ping", [(0x1F, chat_text), (0x13, b"x"), (0x0E, bytes(255))], level=3)
deflate_frames("deflate-final-block", [(0x23, chat_text), (0x23, chat_text), (0x03, chat_text)], level=1)
deflate_frames("deflate-stored-small-window", [(0x03, chat_text * 3), (0x83, b"a" * 8160)], level=0, window=0)
deflate_frames("deflate-too-big-inflated", [(0x03, b"ok"), (0x82, b"\0" * 8000)], limit=1000)
deflate_frames("deflate-too-big-frames", [(0x82, bytes(range(256)) * 20)], limit=300, level=0)
deflate_frames("deflate-invalid-utf8", [(0x03, b"fine"), (0x0B, b"\xff\xfe\xc3 broken"), (0x03, b"never")])
deflate_frames("deflate-empty", [(0x03, b""), (0x03, b""), (0x23, b""), (0x02, b"")])
deflate_frames("deflate-limit-1", [(0x03, b"a"), (0x03, b"ab")], limit=1)

# json: the text itself.
token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1LTEifQ.sig"
for name, text in {
    "auth": '{"type":"auth","token":"%s","id":1}' % token,
    "subscribe": '{"type":"subscribe","topic":"chat.*","id":"s-1"}',
    "unsubscribe": '{"type":"unsubscribe","topic":"chat.**"}',
    "message": '{"type":"message","topic":"chat.room-1","data":{"text":"hello","n":[1,2.5,-3e2,true,false,null]},"metadata":{"k":"v"},"eventType":"typing"}',
    "ping": '{"type":"ping","id":42}',
    "numbers": '{"ts":1796133956872868123,"big":12345678901234567890,"neg":-9007199254740993,"e":1e400,"small":5e-324,"z":-0,"f":0.1,"x":1E+2}',
    "boundary-ints": "[9007199254740991,9007199254740992,9007199254740993,-9223372036854775808,18446744073709551615,18446744073709551616]",
    "escapes": r'"\" \\ \/ \b \f \n \r \t \u0000 \u001f \u00e9 \u20AC"',
    "surrogates": r'["\ud83d\ude00","😀","\uD834\uDD1E"]',
    "lone-surrogate": r'"\ud800"',
    "lone-low-surrogate": r'"\udc00x"',
    "duplicates": '{"a":1,"a":2,"b":{"c":true,"c":false}}',
    "canonical-duplicates": '{"\u00e9":1,"e\u0301":2}',
    "deep-ok": "[" * 128 + "]" * 128,
    "deep-refused": "[" * 129 + "]" * 129,
    "deep-object": '{"a":' * 130 + "0" + "}" * 130,
    "top-string": '"just a string"',
    "top-number": "  -12.5e-3 ",
    "top-true": "true",
    "top-null": "null",
    "empty-containers": '{"a":[],"b":{},"c":[{}],"d":""}',
    "whitespace": ' \t\r\n{ "a" : [ 1 , 2 ] }\n',
    "trailing-comma": '{"a":1,}',
    "trailing-comma-array": "[1,2,]",
    "leading-zero": "01",
    "bad-literal": "tru",
    "nan": "NaN",
    "plus": "+1",
    "dot": "1.",
    "exp": "1e",
    "control-char": '"a\tb"',
    "single-quotes": "{'a':1}",
    "unterminated": '{"a":"b',
    "two-values": "1 2",
    "empty": "",
    "long-string": '"' + "x" * 2000 + '"',
    "unicode": '{"ключ":"значение","絵文字":"🎉","mixed":"a\u0301"}',
}.items():
    write("json", name, text)
write("json", "invalid-utf8", b'{"a":"\xff\xfe","b":"\xc3"}')
write("json", "bom", b'\xef\xbb\xbf{"a":1}')
write("json", "utf16", '{"a":1}'.encode("utf-16-le"))
# Duplicates: the same name in two objects is no duplicate; before and after the 16th name of an
# object (JSONParser switches from a list of names to a set at 16).
write("json", "same-key-two-objects", '[{"a":1},{"a":2}]')
write("json", "same-key-nested", '{"a":{"a":1}}')
write("json", "same-key-nested-then-duplicate", '{"a":{"a":1,"b":[{"b":2}]},"b":3,"a":4}')


def keys(count, duplicate_at=None, of=0):
    names = ["k%d" % i for i in range(count)]
    if duplicate_at is not None:
        names[duplicate_at] = names[of]
    return "{" + ",".join('"%s":%d' % (name, i) for i, name in enumerate(names)) + "}"


write("json", "keys-17", keys(17))
write("json", "keys-20", keys(20))
write("json", "keys-17-duplicate-before-16th", keys(17, duplicate_at=10, of=3))
write("json", "keys-17-duplicate-at-16th", keys(17, duplicate_at=15, of=0))
write("json", "keys-17-duplicate-after-16th", keys(17, duplicate_at=16, of=2))
write("json", "keys-20-duplicate-after-16th", keys(20, duplicate_at=19, of=17))
write("json", "keys-20-escaped-duplicate", keys(20)[:-1] + r',"k\u0031":0}')
write("json", "keys-20-nested", "{" + ",".join('"k%d":%s' % (i, keys(20)) for i in range(20)) + "}")

# topics: lines; each is tried as a topic and a pattern.
for name, lines in {
    "exact": ["chat.room-1", "chat.room-1"],
    "star": ["chat.room-1.typing", "chat.*.typing", "chat.*"],
    "double-star": ["chat.a.b.c", "chat.**", "**.c", "a.**.z", "**"],
    "stacked": ["a.b.a.b.a.b", "**.a.**.b", "**.**.**", "*.**.*"],
    "user": ["messages.user.john.smith", "messages.user.john.**", "messages.user.*"],
    "invalid": ["", ".a", "a.", "a..b", "a*", "***", "a.*b", "sp ace", "é", "a/b"],
    "alphabet": ["A-Z_a-z:0-9.x", "*.x", "A-Z_a-z:0-9.*"],
    "deep": [".".join(["s"] * 16), ".".join(["s"] * 17), ".".join(["**"] * 16), ".".join(["*"] * 16)],
    "long": ["x" * 255, "x" * 256, "a." + "b" * 253],
    "wildcard-topic": ["chat.*", "chat.**"],
    "covers": ["a.b.c.d", "a.**", "a.*.**", "a.**.d", "*.*.**", "a.b.*.d"],
    "covers-stacked": ["x.y.x.y.x", "**.x.**", "x.**.x", "**.y.*.**", "*.**.*.**"],
    "single": ["a", "*", "**"],
    "repeated-segments": ["a.a.a.a.a.a.a.a", "a.**.a", "**.a.a.**", "*.a.*.a.*"],
    "mixed-case": ["Chat.Room", "chat.room", "Chat.*", "*.Room"],
    "colons": ["user:1.inbox", "user:1.*", "**.inbox"],
    "near-limit": [".".join(["abcdefghijklmno"] * 16), ".".join(["abcdefghijklmno"] * 15) + ".*"],
}.items():
    write("topics", name, "\n".join(lines))


# token: byte 0 picks the mode (0 raw token, 1 signed header.payload, 2 minted then mutated).
def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=")


secret = b"chorus-fuzz-secret-of-at-least-32-bytes"


def signed(header, claims):
    head = b64(json.dumps(header, separators=(",", ":")).encode())
    body = b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = b64(hmac.new(secret, head + b"." + body, hashlib.sha256).digest())
    return head + b"." + body + b"." + sig


real = signed({"alg": "HS256", "typ": "JWT"}, {"sub": "user-1", "iat": 1799999000, "exp": 1800000600,
              "grants": {"subscribe": ["chat.**"], "publish": ["chat.*"]}})
write("token", "real", b"\x00" + real)
write("token", "expired", b"\x00" + signed({"alg": "HS256"}, {"sub": "u", "exp": 1700000000}))
write("token", "none-alg", b"\x00" + signed({"alg": "none"}, {"sub": "u"}))
write("token", "rs256-alg", b"\x00" + signed({"alg": "RS256"}, {"sub": "u"}))
write("token", "padding", b"\x00" + real + b"==")
write("token", "two-parts", b"\x00abc.def")
write("token", "garbage", b"\x00...")
write("token", "signed-claims", b'\x01{"alg":"HS256"}.{"sub":"alice","exp":1800000600,"nbf":1700000000}')
write("token", "signed-userid", b'\x01{"alg":"HS256"}.{"userId":"bob"}')
write("token", "signed-empty-sub", b'\x01{"alg":"HS256"}.{"sub":""}')
write("token", "signed-grants", b'\x01{"alg":"HS256"}.{"sub":"c","grants":{"subscribe":["a.*"],"publish":["b*"]}}')
write("token", "signed-types", b'\x01{"alg":"HS256","crit":["x"]}.{"sub":1,"exp":"soon"}')
write("token", "signed-not-json", b'\x01{"alg":"HS256"}.\xff\x00')
write("token", "minted", b"\x02\x00\x10\x41user-1")
write("token", "minted-dotted", b"\x02\x00\x50\x2ejohn.smith")
write("token", "minted-signature-byte", b"\x02\xff\xf0\x41user-2")
write("token", "minted-header-byte", b"\x02\x00\x02\x41user-3")
write("token", "signed-nested", b'\x01{"alg":"HS256","typ":"JWT","kid":{"a":[1]}}.{"sub":"d","grants":null,"exp":1e400}')
write("token", "signed-huge-exp", b'\x01{"alg":"HS256"}.{"sub":"e","exp":1e308,"nbf":-1e308}')
write("token", "alg-case", b"\x00" + signed({"alg": "hs256"}, {"sub": "u"}))
write("token", "alg-missing", b"\x00" + signed({"typ": "JWT"}, {"sub": "u"}))
write("token", "minted-unicode", "\x02\x01\x00\x7aжанна-🎉".encode())

# envelope: the bytes Redis delivers.
for name, envelope in {
    "topic": {"v": 1, "id": "node-1:42", "origin": "node-1", "topic": "chat.room-1", "userId": "u-7",
              "eventType": "message", "data": {"text": "hi"}, "metadata": {"k": "v"},
              "timestamp": "2025-01-31T12:00:00.123Z"},
    "user": {"v": 1, "id": "n:1", "origin": "n", "userId": "alice", "data": None, "timestamp": "2025-01-31T12:00:00Z"},
    "numbers": {"v": 1, "id": "n:2", "origin": "n", "topic": "a", "data": [1, -0.5, 1e300, 12345678901234567890],
                "timestamp": "2025-01-31T12:00:00.999Z"},
    "metadata-null": {"v": 1, "id": "n:3", "origin": "n", "topic": "a.b", "data": "x", "metadata": None,
                      "timestamp": "2025-01-31T12:00:00.001Z"},
    "no-address": {"v": 1, "id": "n:4", "origin": "n", "data": 1, "timestamp": "2025-01-31T12:00:00.000Z"},
    "bad-version": {"v": 2, "id": "n:5", "origin": "n", "topic": "a", "data": 1, "timestamp": "2025-01-31T12:00:00.000Z"},
    "bad-topic": {"v": 1, "id": "n:6", "origin": "n", "topic": "a.*", "data": 1, "timestamp": "2025-01-31T12:00:00.000Z"},
    "bad-timestamp": {"v": 1, "id": "n:7", "origin": "n", "topic": "a", "data": 1, "timestamp": "yesterday"},
    "escapes": {"v": 1, "id": "n:\"8\"", "origin": "n\\", "topic": "a", "eventType": "t\n\u0001",
                "data": {"s": "\u00e9\U0001F600\u2028"}, "timestamp": "2025-12-31T23:59:59.999Z"},
    "unknown-fields": {"v": 1, "x": [1, 2], "id": "n:9", "origin": "n", "topic": "a", "data": {},
                       "timestamp": "2025-01-31T12:00:00.500Z"},
    "timestamp-fraction": {"v": 1, "id": "n:10", "origin": "n", "topic": "a", "data": 0,
                           "timestamp": "2025-01-31T12:00:00.1234567Z"},
    "timestamp-offset": {"v": 1, "id": "n:11", "origin": "n", "topic": "a", "data": 0,
                         "timestamp": "2025-01-31T12:00:00.123+02:00"},
}.items():
    write("envelope", name, json.dumps(envelope, separators=(",", ":"), ensure_ascii=False))
write("envelope", "infinity", b'{"v":1,"id":"n:12","origin":"n","topic":"a","data":[1e400,-1e400],"timestamp":"2025-01-31T12:00:00.000Z"}')
write("envelope", "duplicate-fields", b'{"v":1,"id":"n:13","id":"x","origin":"n","topic":"a","topic":"b","data":1,"timestamp":"2025-01-31T12:00:00.000Z"}')
write("envelope", "not-object", b"[1,2,3]")
# Positions, kinds and idempotency keys, as the history script and the nodes write them.
def stored(offset, epoch="00c0ffee00c0ffee", **fields):
    head = '{"offset":%s,"epoch":%s,' % (offset, json.dumps(epoch))
    body = {"v": 1, "id": "n:20", "origin": "n", "topic": "chat.a", "data": {"text": "hi"},
            "timestamp": "2025-01-31T12:00:00.123Z"}
    body.update(fields)
    return head + json.dumps(body, separators=(",", ":"), ensure_ascii=False)[1:]


write("envelope", "offset-epoch", stored(7))
write("envelope", "offset-max", stored(9223372036854775807))
write("envelope", "offset-past-int64", stored(9223372036854775808))
write("envelope", "offset-zero", stored(0))
write("envelope", "offset-negative", stored(-1))
write("envelope", "offset-fraction", stored("1.0"))
write("envelope", "offset-exponent", stored("1e3"))
write("envelope", "offset-string", stored('"7"'))
write("envelope", "offset-null", stored("null"))
write("envelope", "offset-empty-epoch", stored(3, epoch=""))
write("envelope", "offset-numeric-epoch", stored(3, epoch=5))
write("envelope", "offset-no-epoch", '{"offset":3,"v":1,"id":"n:21","origin":"n","topic":"a","data":1,"timestamp":"2025-01-31T12:00:00.000Z"}')
write("envelope", "epoch-no-offset", '{"epoch":"E","v":1,"id":"n:22","origin":"n","topic":"a","data":1,"timestamp":"2025-01-31T12:00:00.000Z"}')
write("envelope", "kind-presence", stored(4, kind="presence", data={"event": "join", "member": {"userId": "u"}}))
write("envelope", "kind-typing", stored(5, kind="typing", data={"userId": "u", "state": "start"}, eventType=""))
write("envelope", "kind-gap", json.dumps({"v": 1, "id": "n:23", "origin": "n", "userId": "u-1", "kind": "gap",
                                          "data": {"ago": 1500}, "timestamp": "2025-01-31T12:00:00.000Z"}, separators=(",", ":")))
write("envelope", "kind-unknown", stored(6, kind="receipt"))
write("envelope", "kind-null", stored(6, kind=None, messageId=None, eventType=None, userId=None))
write("envelope", "message-id", stored(8, messageId="client-42", userId="bob", eventType="message.sent",
                                       metadata={"senderId": "alice", "data": [1]}))
write("envelope", "message-id-empty", stored(9, messageId=""))
write("envelope", "message-id-number", stored(9, messageId=42))
write("envelope", "version-float", '{"v":1.0,"id":"n:24","origin":"n","topic":"a","data":1,"timestamp":"2025-01-31T12:00:00.000Z"}')
write("envelope", "data-deep-ok", '{"v":1,"id":"n:25","origin":"n","topic":"a","data":' + "[" * 127 + "]" * 127
      + ',"metadata":{"data":{"data":null}},"timestamp":"2025-01-31T12:00:00.000Z"}')
write("envelope", "data-deep-refused", '{"v":1,"id":"n:26","origin":"n","topic":"a","data":' + "[" * 128 + "]" * 128
      + ',"timestamp":"2025-01-31T12:00:00.000Z"}')
write("envelope", "data-spaces", '{ "v" : 1 , "id" : "n:27" , "origin" : "n" , "topic" : "a" , "data" : { "x" : [ 1 , 2 ] } , "metadata" : null , "timestamp" : "2025-01-31T12:00:00.000Z" }')

# inflate: two bytes choose the limit (1 + n % 65536), the rest is a compressed message as a
# client sends it (raw deflate, sync flush, 00 00 FF FF left off).


def deflated(data, level=6, final=False):
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    out = compressor.compress(data) + compressor.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH)
    return out if final else out[:-4]


chat = json.dumps({"type": "message", "topic": "chat.lobby",
                   "data": {"text": "the deploy is done, dashboards are green again", "seq": 7}}).encode()
write("inflate", "chat", b"\x10\x00" + deflated(chat))
write("inflate", "chat-stored", b"\x10\x00" + deflated(chat, level=0))
write("inflate", "chat-final-block", b"\x10\x00" + deflated(chat, final=True))
write("inflate", "bomb", b"\x01\x00" + deflated(b"\x00" * 200_000, level=9))
write("inflate", "at-limit", b"\x00\x63" + deflated(b"z" * 100))
write("inflate", "empty", b"\x00\x10" + deflated(b""))
write("inflate", "garbage", b"\x00\x10\xff\xff\xff\xff\x00")

# member: a message as the node sends it; the SDK finds its `data` text without parsing.
for name, text in {
    "message": '{"type":"message","topic":"chat.a","eventType":"message.sent","data":{"n":12345678901234567890,"s":"\\"}"},"metadata":{"senderId":"x","data":[1]},"timestamp":"2026-12-04T00:00:00.000Z","offset":3,"epoch":"E"}',
    "spaces": '{ "topic" : "a\\"}{[" , "data" : [ 1 , { "x" : "]" } ] }',
    "data-first": '{"data":"text","type":"message"}',
    "literal": '{"data":true}',
    "user-message": '{"type":"message","eventType":"invite","data":null,"metadata":{"senderId":"server"}}',
    "metadata-data-first": '{"type":"message","metadata":{"data":"not this"},"data":{"n":1}}',
    "event-type-data": '{"eventType":"data","topic":"data","data":"this"}',
    "data-in-data": '{"data":{"data":{"data":[]}},"x":"\\"data\\":1"}',
    "escaped-key": '{"d\\u0061ta":1,"metadata":{"data":2}}',
    "escaped-key-quote": '{"x\\"data":1,"data":2}',
    "data-string-value": '{"note":"\\"data\\":3","data" : 4 }',
    "duplicate-data": '{"data":1,"data":2}',
}.items():
    write("member", name, text)
write("member", "truncated", b'{"type":"message","data":{"a":[1,2')

# redis: one byte seeds the split points, one chooses the subscriber's patterns (low four bits:
# chat.*, a.**, **.typing, news.**.x) and the member list's budget (high four bits, 40 bytes
# each; 0 none); the rest is what Redis sends (RESP2: hiredis 0.14 reads no RESP3 types).
def resp(value):
    if value is None:
        return b"$-1\r\n"
    if isinstance(value, bool):
        raise TypeError("no booleans in RESP2")
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, (bytes, str)):
        data = value.encode() if isinstance(value, str) else value
        return b"$%d\r\n%s\r\n" % (len(data), data)
    if isinstance(value, tuple):  # ("+", text) status, ("-", text) error
        return value[0].encode() + value[1].encode() + b"\r\n"
    return b"*%d\r\n" % len(value) + b"".join(resp(v) for v in value)


def redis(name, stream, seed=5, choices=0x0F):
    write("redis", name, bytes([seed, choices]) + stream)


def envelope(n, topic="chat.room-1", offset=None, epoch="E1", **extra):
    fields = {}
    if offset is not None:
        fields.update(offset=offset, epoch=epoch)
    fields.update(v=1, id="node-1:%d" % n, origin="node-1")
    if topic is not None:
        fields["topic"] = topic
    fields.update(extra)
    fields.setdefault("data", {"text": "hi %d" % n})
    fields.setdefault("timestamp", "2026-01-31T12:00:00.%03dZ" % n)
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False)


redis("subscribe-confirmations", resp(["subscribe", "pubsub:chat.room-1", 1]) + resp(["psubscribe", "pubsub:chat.*", 2])
      + resp(["unsubscribe", "pubsub:chat.room-1", 1]) + resp(["pong", ""]) + resp(("+", "PONG")))
redis("message", resp(["message", "pubsub:chat.room-1", envelope(1, offset=7)]))
redis("message-user", resp(["message", "pubsub:@user:u-7", envelope(2, topic=None, userId="u-7")]))
redis("message-wrong-channel", resp(["message", "pubsub:chat.other", envelope(3)])
      + resp(["message", "other:chat.room-1", envelope(4)]))
redis("pmessage", resp(["pmessage", "pubsub:chat.*", "pubsub:chat.room-1", envelope(5)])
      + resp(["pmessage", "pubsub:chat.*", "pubsub:chat.room-1.deeper", envelope(6, topic="chat.room-1.deeper")])
      + resp(["pmessage", "pubsub:*", "pubsub:@user:u-7", envelope(7, topic=None, userId="u-7")]))
redis("pmessage-duplicate", resp(["message", "pubsub:chat.a", envelope(8, topic="chat.a")])
      + resp(["pmessage", "pubsub:chat.*", "pubsub:chat.a", envelope(8, topic="chat.a")]))
redis("gap", resp(["message", "pubsub:chat.room-1", envelope(9, kind="gap", data={"ago": 1500})]))
redis("typing", resp(["message", "pubsub:chat.room-1", envelope(10, kind="typing", data={"userId": "u", "state": "start"})]))
redis("message-malformed", resp(["message", "pubsub:chat.room-1", "{\"v\":1"]) + resp(["message", "pubsub:chat.room-1", b"\xff"]))
redis("subscriber-refused", resp(("-", "NOPERM this user has no permissions to access the 'pubsub:x' channel"))
      + resp(["message", "pubsub:chat.room-1", envelope(11)]))
for count in range(4):
    redis("history-page-%d" % count, resp(["E1", 3 + count, 3 if count else 0, 0]
                                          + [envelope(20 + i, offset=3 + i) for i in range(count)]))
redis("history-page-truncated", resp(["E1", 9, 2, 1, envelope(30, offset=2)]))
redis("history-page-foreign", resp(["E1", 5, 1, 0, envelope(31, topic="other.topic", offset=5),
                                    envelope(32, topic=None, userId="u-9", offset=6)]))
redis("history-page-not-envelope", resp(["E1", 1, 1, 0, "[]"]))
redis("history-page-empty-epoch", resp([("+", "E2"), 0, 0, 0]))
redis("presence-page", resp([4, ["a", "b", "c", "d"], ['{"userId":"a"}', "[]", '"x"', "null"], ["1", "2", "3", "4"], 0]),
      choices=0x00)
redis("presence-page-budget", resp([3, ["a", "b", "c"], ['{"userId":"a","data":{"n":1}}', '{"userId":"b","connections":9}',
                                                         ' {"userId":"c"} '], ["1", "x", "-3"], 1]), choices=0x10)
redis("presence-page-odd", resp([2, ["a", 5, None], ['{"userId":"a"}', '{"userId":"b"}', '{}'], ["1", "1", "1"], 1]))
redis("presence-page-mismatch", resp([1, ["a", "b"], ['{"userId":"a"}'], ["1", "1"], 0]))
redis("presence-page-invalid-json", resp([2, ["a", "b"], ['{"userId":"a"', '{"a":1,"a":2}'], ["1", "1"], 0]))
redis("presence-page-deep", resp([1, ["a"], ["{\"d\":" * 127 + "1" + "}" * 127], ["1"], 0]))
redis("publish-outcomes", resp([1, 41, "E1", 0, 12, "E1", -1, 0, "OOM command not allowed when used memory > 'maxmemory'."]))
redis("publish-outcomes-bad", resp([1, "41", "E1"]) + resp([2, 1]) + resp([]))
redis("rewind", resp(2) + resp(("-", "NOPERM this user has no permissions to run the 'evalsha' command"))
      + resp(("-", "READONLY You can't write against a read only replica.")))
redis("sentinel", resp(["10.0.0.5", "6380"]) + resp(None) + resp(["master", 12345, []])
      + resp(["slave", "10.0.0.4", 6379, "connected", 100]) + resp(["sentinel", ["mymaster"]])
      + resp(["message", "+switch-master", "mymaster 10.0.0.4 6379 10.0.0.5 6380"])
      + resp(["message", "+switch-master", "other 10.0.0.4 6379 10.0.0.5 99999"])
      + resp(["10.0.0.5", "+6380"]) + resp(["10.0.0.5", "0"]))
redis("nested", b"*2\r\n*2\r\n*1\r\n*0\r\n$-1\r\n:-9223372036854775808\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n")
redis("nested-too-deep", b"*1\r\n" * 9 + b":1\r\n")  # hiredis 0.14: at most 8 arrays deep
redis("nested-deepest", b"*1\r\n" * 8 + b":1\r\n")
redis("nulls", b"$-1\r\n*-1\r\n*0\r\n$0\r\n\r\n+\r\n-\r\n")
redis("bulk-binary", resp(b"\x00\r\n\xff\xfe") + resp(("+", "status with \r inside")) + resp(("-", "ERR \xe9t\xe9")))
redis("incomplete", resp(["message", "pubsub:chat.room-1", envelope(40)])[:-7])
redis("protocol-errors", b"+OK\r\n:12a\r\n")
redis("bad-type-byte", b":1\r\n!oops\r\n")
redis("bad-lengths", b"$-2\r\n")
redis("bad-multibulk", b"*01\r\n:1\r\n")
redis("big-array-header", b"*70000\r\n:1\r\n")  # not fed (above 65,536 elements)
