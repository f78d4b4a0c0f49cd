"""Fuzz classtrace._wire under AddressSanitizer and UBSan: the C that reads untrusted bytes.

The property tests (tests/unit/test_wire.py) hold the scanner's answers to read_event; this
looks for memory errors instead, on many more inputs than a test run affords. It builds the
extension with ``-fsanitize=address,undefined`` into a temporary directory, then re-runs itself
under the sanitizer runtime feeding the three entry points byte-mutated load-test batches and
random bytes, and batches whose last event is mutated but correctly framed (so a read past any
message's end is a read past the buffer). Any sanitizer report aborts with its stack; a clean
run prints a summary. ``--source`` fuzzes another copy of the C file (e.g. one with a bug
planted, to see the fuzzer find it).

It also builds the worker's C loop (stream_processors/_fold.c) with the same sanitizers and
runs its differential property test (tests/unit/test_fold.py: generated records with seqs far
apart, below a bitmap's base, near 2^64, duplicates and refused records) against it,
``--fold-rounds`` times with different hypothesis seeds (``--fold-source``: another copy).

    .venv/bin/python scripts/fuzz_wire.py [--mutations 100000] [--random 200000] [--seed 1]
                                          [--fold-rounds 3]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "classtrace" / "_wire.c"
FOLD_SOURCE = ROOT / "stream_processors" / "_fold.c"


def build(directory: Path, source: Path, name: str = "_wire") -> None:
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    subprocess.run(
        ["gcc", "-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
         "-fno-omit-frame-pointer", "-std=c11", "-fPIC", "-shared",
         f"-I{sysconfig.get_paths()['include']}", f"-I{ROOT / 'classtrace'}", str(source),
         "-o", str(directory / f"{name}{suffix}")],
        check=True,
    )  # fmt: skip


def runtime_libraries() -> str:
    names = ("libasan.so", "libubsan.so")
    out = [
        subprocess.run(["gcc", f"-print-file-name={n}"], capture_output=True, text=True, check=True)
        for n in names
    ]
    return ":".join(o.stdout.strip() for o in out)


def mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        at = rng.randrange(len(b)) if b else 0
        op = rng.random()
        if op < 0.4 and b:
            b[at] ^= 1 << rng.randrange(8)
        elif op < 0.6 and b:
            b[at] = rng.randrange(256)
        elif op < 0.8:
            b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        elif b:
            del b[at : at + rng.randint(1, 8)]
    if rng.random() < 0.1:
        b = b[: rng.randrange(len(b) + 1)]
    return bytes(b)


def last_event_mutated(rng: random.Random, events: list[bytes]) -> bytes:
    """A batch whose last event is mutated and correctly framed: its end is the buffer's end, so
    any read past a message's end is a read past the allocation, which ASan reports."""
    from classtrace.codec import varint

    picked = [rng.choice(events) for _ in range(rng.randint(0, 2))]
    last = mutate(rng, rng.choice(events))
    return b"".join(b"\x0a" + varint(len(e)) + e for e in [*picked, last])


def _fields(data: bytes) -> list[tuple[int, int, int]] | None:
    """``(start, value_start, end)`` of each top-level field of a message, or None if unparseable."""
    out, i = [], 0

    def varint(at: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            byte = data[at]
            value |= (byte & 0x7F) << shift
            at += 1
            if not byte & 0x80:
                return value, at
            shift += 7

    try:
        while i < len(data):
            start = i
            tag, i = varint(i)
            kind = tag & 7
            if kind == 0:
                _, i = varint(i)
                out.append((start, i, i))
            elif kind in {1, 5}:
                i += 8 if kind == 1 else 4
                out.append((start, i, i))
            elif kind == 2:
                length, i = varint(i)
                out.append((start, i, i + length))
                i += length
            else:
                return None
    except IndexError:
        return None
    return out if i == len(data) else None


def cut_tail(rng: random.Random, message: bytes, depth: int = 0) -> bytes:
    """``message`` cut short by 1–4 bytes *inside* its last field, every enclosing length fixed:
    the cut lands at the buffer's end, where an unchecked read would leave the allocation."""
    from classtrace.codec import varint

    fields = _fields(message)
    if not fields:
        return message[:-1]
    start, value_start, end = fields[-1]
    tag = message[start:value_start]
    if end > value_start and message[value_start - 1] < 0x80 and depth < 3 and rng.random() < 0.7:
        # length-delimited: recurse into it and re-frame it with its new length
        head = message[:start]
        tag_only = tag[: len(tag) - len(varint(end - value_start))]
        inner = cut_tail(rng, message[value_start:end], depth + 1)
        return head + tag_only + varint(len(inner)) + inner
    return message[: max(start + 1, len(message) - rng.randint(1, 4))]


def fuzz(args: argparse.Namespace) -> int:
    import _wire  # the sanitized build, first on sys.path

    from classtrace.codec import varint
    from classtrace.v1 import events_pb2 as pb
    from loadtests.traffic import BatchFactory, load_devices, template_events
    from tests.unit.test_validation import make

    device = load_devices("abcdef12", 1)[0]
    factory = BatchFactory(device, template_events())
    seeds = [factory.next_batch()[0] for _ in range(20)]
    events = [e.SerializeToString() for s in seeds[:2] for e in pb.EventBatch.FromString(s).events]
    # canonical encodings too: upb writes the payload last, so its last field ends the event
    events += [
        make(kind).SerializeToString() for kind in ("trace", "observation", "teaching", "lesson", "heartbeat")
    ]
    rng = random.Random(args.seed)
    now = time.time()
    bound = (device.school_id, device.classroom_id, device.device_id, 1, 2)
    accepted = 0
    for i in range(args.mutations):
        if i % 3 == 0:
            data = mutate(rng, rng.choice(seeds))
        elif i % 3 == 1:
            data = last_event_mutated(rng, events)
        else:
            cut = cut_tail(rng, rng.choice(events))
            data = b"\x0a" + varint(len(cut)) + cut
        n = _wire.count_valid(data, now)
        rows = _wire.scan_events(data, now, device.classroom_id)
        _wire.accept_bound(data, now, *bound)
        if rows is not None and len(rows) != n:  # the key check may only refuse more
            raise AssertionError(f"scan_events accepted what count_valid did not: {data[:200]!r}…")
        accepted += n >= 0
    for _ in range(args.random):
        data = os.urandom(rng.randint(0, 64))
        _wire.count_valid(data, now)
        _wire.scan_events(data, now, device.classroom_id)
        _wire.accept_bound(data, now, *bound)
    print(f"clean: {args.mutations} mutated batches ({accepted} still accepted), {args.random} random inputs")
    return fuzz_fold(args)


def fuzz_fold(args: argparse.Namespace) -> int:
    """tests/unit/test_fold.py against the sanitized stream_processors._fold (``-s``: a sanitizer
    report goes to the terminal, not into pytest's capture)."""
    import pytest

    import stream_processors

    stream_processors.__path__.insert(0, args.in_sanitizer)  # the sanitized _fold comes first
    import stream_processors._fold as fold

    if not fold.__file__ or not fold.__file__.startswith(args.in_sanitizer):
        raise AssertionError(f"not the sanitized build: {fold.__file__}")
    for round_ in range(args.fold_rounds):
        seed = str(args.seed * 1000 + round_)
        argv = ["-q", "-s", "-x", "-p", "no:cacheprovider", str(ROOT / "tests/unit/test_fold.py"),
                "--hypothesis-seed", seed]  # fmt: skip
        if pytest.main(argv) != 0:
            return 1
    print(f"clean: tests/unit/test_fold.py x{args.fold_rounds} under the sanitizers")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutations", type=int, default=100_000)
    parser.add_argument("--random", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fold-rounds", type=int, default=3)
    parser.add_argument("--source", type=Path, default=SOURCE, help="the C file to build (default: ours)")
    parser.add_argument("--fold-source", type=Path, default=FOLD_SOURCE, help="the worker loop's C file")
    parser.add_argument("--in-sanitizer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.in_sanitizer:
        sys.path[:0] = [args.in_sanitizer, str(ROOT)]
        return fuzz(args)
    with tempfile.TemporaryDirectory() as tmp:
        build(Path(tmp), args.source)
        build(Path(tmp), args.fold_source, "_fold")
        # PYTHONMALLOC=malloc: Python's own allocator would hide overruns from ASan.
        env = {
            **os.environ,
            "LD_PRELOAD": runtime_libraries(),
            "ASAN_OPTIONS": "detect_leaks=0",
            "PYTHONMALLOC": "malloc",
        }
        argv = [sys.executable, __file__, "--in-sanitizer", tmp, "--mutations", str(args.mutations),
                "--random", str(args.random), "--seed", str(args.seed),
                "--fold-rounds", str(args.fold_rounds)]  # fmt: skip
        return subprocess.run(argv, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
