"""Lists the images of a CUDA fat binary, for tests (no cuobjdump here).

usage: fatbin_list.py FATBIN [--embedded-in FILE]

Prints one line per image: "<elf|ptx> sm_XY <bytes>[ compressed]". The
layout (little endian) is the one fatbinary writes: a 16-byte header (magic
0xBA55ED50, u16 version, u16 header size, u64 size of the images), then
images, each a header (u16 kind: 1 PTX, 2 ELF; u16 version; u32 header
size; u64 padded payload size; ...; u32 sm at offset 28) and its payload.
--embedded-in checks that FILE (model.so) contains the fat binary
byte for byte, as the host code must to load it.
"""

import argparse
import struct
import sys

MAGIC = 0xBA55ED50


def main():
    p = argparse.ArgumentParser()
    p.add_argument("fatbin")
    p.add_argument("--embedded-in")
    a = p.parse_args()
    data = open(a.fatbin, "rb").read()
    if len(data) < 16:
        sys.exit(f"{a.fatbin}: {len(data)} bytes, shorter than a fat binary header")
    magic, _, header, size = struct.unpack_from("<IHHQ", data, 0)
    if magic != MAGIC:
        sys.exit(f"{a.fatbin}: magic {magic:#x}, not a fat binary ({MAGIC:#x})")
    if header + size != len(data):
        sys.exit(f"{a.fatbin}: header says {header + size} bytes, file has {len(data)}")
    off = header
    while off < len(data):
        kind, _, ihdr, padded = struct.unpack_from("<HHIQ", data, off)
        (sm,) = struct.unpack_from("<I", data, off + 28)
        payload = data[off + ihdr:off + ihdr + 4]
        name = {1: "ptx", 2: "elf"}.get(kind, f"kind{kind}")
        # ELF images start with \x7fELF; compressed ones with zstd's magic.
        compressed = name == "elf" and payload != b"\x7fELF" or \
            name == "ptx" and payload == b"\x28\xb5\x2f\xfd"
        print(f"{name} sm_{sm} {padded}" + (" compressed" if compressed else ""))
        off += ihdr + padded
    if a.embedded_in:
        if data not in open(a.embedded_in, "rb").read():
            sys.exit(f"{a.embedded_in} does not embed {a.fatbin}")
        print(f"embedded in {a.embedded_in}")


if __name__ == "__main__":
    main()
