#!/usr/bin/python3
"""Writes a Megatron indexed dataset (.bin/.idx, the MMIDIDX format) with numpy, from the format's
description (megatron/core/datasets/indexed_dataset.py: _IndexWriter), as an independent
reference for the C++ reader.

usage: write_indexed_dataset.py PREFIX DTYPE SEQUENCES_JSON [DOCUMENT_INDICES_JSON]
  DTYPE: uint8 int8 int16 int32 int64 uint16
  SEQUENCES_JSON: a list of token-id lists, e.g. '[[1,2,3],[4,5]]'
  DOCUMENT_INDICES_JSON: defaults to one document per sequence, [0, 1, ..., N]
"""
import json
import struct
import sys

import numpy

CODES = {"uint8": 1, "int8": 2, "int16": 3, "int32": 4, "int64": 5, "float64": 6,
         "float32": 7, "uint16": 8}


def main():
    prefix, dtype_name, sequences = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    documents = json.loads(sys.argv[4]) if len(sys.argv) > 4 else list(range(len(sequences) + 1))
    dtype = numpy.dtype(dtype_name)
    pointers, position = [], 0
    with open(prefix + ".bin", "wb") as out:
        for sequence in sequences:
            data = numpy.array(sequence, dtype=dtype)
            out.write(data.tobytes(order="C"))
            pointers.append(position)
            position += data.size * dtype.itemsize
    with open(prefix + ".idx", "wb") as out:
        out.write(b"MMIDIDX\x00\x00")
        out.write(struct.pack("<Q", 1))
        out.write(struct.pack("<B", CODES[dtype_name]))
        out.write(struct.pack("<Q", len(sequences)))
        out.write(struct.pack("<Q", len(documents)))
        out.write(numpy.array([len(s) for s in sequences], dtype=numpy.int32).tobytes(order="C"))
        out.write(numpy.array(pointers, dtype=numpy.int64).tobytes(order="C"))
        out.write(numpy.array(documents, dtype=numpy.int64).tobytes(order="C"))


if __name__ == "__main__":
    main()
