#!/usr/bin/python3
"""An independent safetensors implementation for gptbuilder's reader/writer tests.

Written by hand from the format's definition with numpy only (Debian has no python3-safetensors):

  write OUT_DIR   writes OUT_DIR/reference.safetensors, OUT_DIR/<tensor>.bin (each tensor's raw
                  little-endian bytes) and OUT_DIR/expected.json (values as numbers, bf16 and f16
                  decoded by numpy) for the C++ reader to compare against.
  verify FILE     parses a file written by the C++ writer and checks it holds the tensors the C++
                  test wrote (see safetensors_python_test.cc); exits non-zero with a message if not.
"""
import json
import os
import struct
import sys

import numpy as np


def f32_to_bf16_bits(values):
    """Round-to-nearest-even float32 -> bfloat16 bit patterns (uint16), as torch does."""
    bits = np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounding = ((bits >> 16) & 1) + 0x7FFF
    return ((bits + rounding) >> 16).astype(np.uint16)


def bf16_bits_to_f32(bits):
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


DTYPES = {  # safetensors name -> numpy dtype of the stored bytes (little-endian)
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4",
    "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?",
}


def reference_tensors():
    """(name, safetensors dtype, array of the stored type, values as the tensor means them)."""
    f32 = (np.arange(15, dtype=np.float32) * 0.25 - 1.0).reshape(3, 5)
    bf16_source = np.array([1.0, -2.5, 3.14159265, 65504.0, 1e-3, -0.0, 0.1, 1.00390625],
                           dtype=np.float32)
    bf16 = f32_to_bf16_bits(bf16_source)
    f16 = (np.arange(24, dtype=np.float16) / np.float16(8)).reshape(2, 3, 4)
    i64 = np.array([0, -1, 2**40, -(2**62), 2**63 - 1], dtype=np.int64)
    i32 = np.array([[7, -8], [2**31 - 1, -(2**31)]], dtype=np.int32)
    u8 = np.array([0, 1, 127, 128, 255], dtype=np.uint8)
    mask = np.array([True, False, True], dtype=np.bool_)
    scalar = np.array(np.pi, dtype=np.float64)
    empty = np.zeros((0, 4), dtype=np.int8)
    return [
        ("model.embed.weight", "F32", f32, f32),
        ("layers.0.bf16", "BF16", bf16, bf16_bits_to_f32(bf16)),
        ("layers.0.f16", "F16", f16, f16.astype(np.float32)),
        ("ids", "I64", i64, i64),
        ("i32", "I32", i32, i32),
        ("bytes", "U8", u8, u8),
        ("mask", "BOOL", mask, mask),
        ("pi", "F64", scalar, scalar),
        ("empty", "I8", empty, empty),
    ]


def write(out_dir):
    tensors = reference_tensors()
    header = {"__metadata__": {"format": "pt", "producer": "numpy by hand"}}
    data = bytearray()
    for name, dtype, stored, _ in tensors:
        raw = np.ascontiguousarray(stored).astype(DTYPES[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": list(stored.shape),
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
        with open(os.path.join(out_dir, name + ".bin"), "wb") as f:
            f.write(raw)
    # Keys sorted and Python's default separators: a layout unlike the C++ writer's, with the
    # data in a different order from the keys.
    text = json.dumps(header, sort_keys=True).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(os.path.join(out_dir, "reference.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        f.write(data)
    expected = {name: {"dtype": dtype, "shape": list(stored.shape),
                       "values": np.asarray(values).ravel().tolist()}
                for name, dtype, stored, values in tensors}
    with open(os.path.join(out_dir, "expected.json"), "w") as f:
        json.dump(expected, f)


def read(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = blob[8 + n:]
    metadata = header.pop("__metadata__", {})
    arrays = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        arrays[name] = np.frombuffer(data[begin:end], dtype=DTYPES[entry["dtype"]]).reshape(
            entry["shape"])
    return n, header, metadata, arrays, len(data)


def verify(path):
    n, header, metadata, arrays, data_size = read(path)
    problems = []

    def check(condition, message):
        if not condition:
            problems.append(message)

    check((8 + n) % 8 == 0, f"data section starts at {8 + n}, not a multiple of 8")
    check(metadata == {"writer": "gptbuilder", "format": "pt"}, f"metadata {metadata}")
    ranges = sorted(tuple(e["data_offsets"]) for e in header.values())
    check(ranges[0][0] == 0 and ranges[-1][1] == data_size and
          all(a[1] == b[0] for a, b in zip(ranges, ranges[1:])),
          f"ranges {ranges} do not tile the {data_size}-byte data section")
    i = np.arange(24, dtype=np.float32)
    check(np.array_equal(arrays["w.f32"], (i * 0.5 - 3.0).reshape(4, 6)), "w.f32 values")
    j = np.arange(15, dtype=np.float32)
    check(header["w.bf16"]["dtype"] == "BF16", "w.bf16 dtype")
    check(np.array_equal(bf16_bits_to_f32(arrays["w.bf16"]), (j * 0.5 - 3.0).reshape(3, 5)),
          f"w.bf16 values {bf16_bits_to_f32(arrays['w.bf16'])}")
    k = np.arange(5, dtype=np.int64)
    check(np.array_equal(arrays["w.i64"], k * 1000003 - 7), "w.i64 values")
    check(np.array_equal(arrays["w.mask"], np.array([True, False, False, True])), "w.mask values")
    check(arrays["w.f16"].shape == (2, 2, 2) and
          np.array_equal(arrays["w.f16"].astype(np.float32).ravel(),
                         np.arange(8, dtype=np.float32) * 0.5), "w.f16 values")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    print(f"verified {len(arrays)} tensors")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "write":
        write(sys.argv[2])
        sys.exit(0)
    if len(sys.argv) == 3 and sys.argv[1] == "verify":
        sys.exit(verify(sys.argv[2]))
    print(__doc__, file=sys.stderr)
    sys.exit(2)
