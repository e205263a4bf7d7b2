#!/usr/bin/env python3
"""Writes the synthetic seeds of corpus/fuzz_dicom (synth-*.dcm); run once, commit the files.

Most are laid out byte by byte here (structures a DICOM writer would refuse to make: nesting
past the limit, lengths past the end, Pixel Data tag bytes inside another value); odd VRs and
values go through DCMTK's dump2dcm. Usage: make_dicom_seeds.py [CORPUS_DIR]
"""
import os
import struct
import subprocess
import sys
import tempfile
import zlib

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus",
                                                         "fuzz_dicom")
EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
BIG_ENDIAN = "1.2.840.10008.1.2.2"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
DEFLATED = "1.2.840.10008.1.2.1.99"
SC = "1.2.840.10008.5.1.4.1.1.7"
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT",
            b"UV"}
UNDEFINED = 0xFFFFFFFF


def pad(value, vr):
    if len(value) % 2:
        value += b"\0" if vr in (b"UI", b"OB", b"UN") else b" "
    return value


def el(group, element, vr, value, length=None, big=False):
    """An explicit VR element; `length` overrides the value's (to lie about it)."""
    e = ">" if big else "<"
    vr = vr.encode()
    value = pad(value, vr) if length is None else value
    n = len(value) if length is None else length
    head = struct.pack(e + "HH", group, element) + vr
    if vr in LONG_VRS:
        head += b"\0\0" + struct.pack(e + "I", n)
    else:
        head += struct.pack(e + "H", n)
    return head + value


def iel(group, element, value, length=None):
    """An implicit VR little endian element."""
    n = len(value) if length is None else length
    return struct.pack("<HHI", group, element, n) + value


def item(body, defined=True):
    if defined:
        return struct.pack("<HHI", 0xFFFE, 0xE000, len(body)) + body
    return struct.pack("<HHI", 0xFFFE, 0xE000, UNDEFINED) + body + \
        struct.pack("<HHI", 0xFFFE, 0xE00D, 0)


def seq_undefined(group, element, items):
    return struct.pack("<HH", group, element) + b"SQ\0\0" + struct.pack("<I", UNDEFINED) + \
        b"".join(items) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)


def part10(dataset, syntax=EXPLICIT_LE, sop="1.2.3.4.5.6.7.8"):
    meta = el(0x0002, 0x0001, "OB", b"\0\1") + el(0x0002, 0x0002, "UI", SC.encode()) + \
        el(0x0002, 0x0003, "UI", sop.encode()) + el(0x0002, 0x0010, "UI", syntax.encode())
    meta = el(0x0002, 0x0000, "UL", struct.pack("<I", len(meta))) + meta
    return b"\0" * 128 + b"DICM" + meta + dataset


def basic(pid=b"SYNTH-1"):
    return el(0x0008, 0x0016, "UI", SC.encode()) + el(0x0008, 0x0018, "UI", b"1.2.3.4.5.6.7.8") + \
        el(0x0010, 0x0010, "PN", b"Synth^Seed") + el(0x0010, 0x0020, "LO", pid)


def image(rows, columns, frames=None, bits=8):
    out = el(0x0028, 0x0002, "US", struct.pack("<H", 1)) + \
        el(0x0028, 0x0004, "CS", b"MONOCHROME2")
    if frames is not None:
        out += el(0x0028, 0x0008, "IS", str(frames).encode())
    out += el(0x0028, 0x0010, "US", struct.pack("<H", rows)) + \
        el(0x0028, 0x0011, "US", struct.pack("<H", columns)) + \
        el(0x0028, 0x0100, "US", struct.pack("<H", bits)) + \
        el(0x0028, 0x0101, "US", struct.pack("<H", bits)) + \
        el(0x0028, 0x0102, "US", struct.pack("<H", bits - 1)) + \
        el(0x0028, 0x0103, "US", struct.pack("<H", 0))
    return out


def nested(depth, defined):
    """`depth` sequences (0040,A730) inside each other, innermost holding a CodeValue."""
    body = el(0x0008, 0x0100, "SH", b"LEAF")
    for _ in range(depth):
        it = item(body, defined)
        if defined:
            body = el(0x0040, 0xA730, "SQ", it)
        else:
            body = seq_undefined(0x0040, 0xA730, [it])
    return body


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def dump2dcm(name, dump):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "in.dump")
        with open(path, "w", encoding="latin-1") as f:
            f.write(dump)
        subprocess.run(["dump2dcm", "-q", path, os.path.join(OUT, name)], check=True)


def main():
    os.makedirs(OUT, exist_ok=True)
    pixels = bytes(range(16))
    # Nesting: within the limit (128), just past it, and with defined lengths.
    write("synth-deep-100-undefined.dcm", part10(basic() + nested(100, False)))
    write("synth-deep-129-undefined.dcm", part10(basic() + nested(129, False)))
    write("synth-deep-40-defined.dcm", part10(basic() + nested(40, True)))
    # Lengths that run past the end of the data.
    write("synth-length-short-overrun.dcm",
          part10(basic() + el(0x0008, 0x1030, "LO", b"abc", length=0xFFFE)))
    write("synth-length-long-overrun.dcm",
          part10(basic() + el(0x0009, 0x1001, "OB", b"\1\2\3\4", length=0xFFFFFFF0)))
    write("synth-length-item-overrun.dcm",
          part10(basic() + el(0x0040, 0xA730, "SQ",
                              struct.pack("<HHI", 0xFFFE, 0xE000, 0x7FFFFFF0) + b"\0" * 8)))
    write("synth-length-meta-overrun.dcm",
          b"\0" * 128 + b"DICM" + el(0x0002, 0x0000, "UL", struct.pack("<I", 0x10000000)) +
          el(0x0002, 0x0010, "UI", EXPLICIT_LE.encode()) + basic())
    # Undefined-length UN holding implicit VR items (CP-246), and an implicit VR file with a
    # sequence.
    un_items = item(iel(0x0008, 0x0100, b"CODE") + iel(0x0008, 0x0104, b"meaning "), False)
    write("synth-un-undefined-sequence.dcm",
          part10(basic() + struct.pack("<HH", 0x0009, 0x1010) + b"UN\0\0" +
                 struct.pack("<I", UNDEFINED) + un_items + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)))
    implicit = iel(0x0008, 0x0016, SC.encode() + b"\0") + iel(0x0010, 0x0020, b"IMPL") + \
        iel(0x0040, 0xA730, item(iel(0x0008, 0x0100, b"CODE"))) + \
        iel(0x7FE0, 0x0010, pixels)
    write("synth-implicit-sequence.dcm", part10(implicit, IMPLICIT_LE))
    # Big endian with a sequence.
    big = el(0x0008, 0x0016, "UI", SC.encode(), big=True) + \
        el(0x0010, 0x0020, "LO", b"BIG", big=True) + \
        el(0x0028, 0x0010, "US", struct.pack(">H", 2), big=True) + \
        el(0x0028, 0x0011, "US", struct.pack(">H", 2), big=True) + \
        el(0x7FE0, 0x0010, "OW", b"\0\1\0\2\0\3\0\4", big=True)
    write("synth-big-endian.dcm", part10(big, BIG_ENDIAN))
    # Encapsulated pixel data: complete, and ending inside a fragment.
    encapsulated = struct.pack("<HH", 0x7FE0, 0x0010) + b"OB\0\0" + struct.pack("<I", UNDEFINED) + \
        item(b"") + item(b"\xff\xd8\xff\xd9") + item(b"\xff\xd8\x00\x00\xff\xd9")
    write("synth-encapsulated.dcm",
          part10(basic() + image(2, 2, 2) + encapsulated + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0),
                 JPEG_BASELINE))
    write("synth-encapsulated-truncated.dcm",
          part10(basic() + image(2, 2, 2) + encapsulated[:-3], JPEG_BASELINE))
    # Huge dimensions over a few bytes of pixels; pixels that run past the end.
    write("synth-pixels-huge-dimensions.dcm",
          part10(basic() + image(65535, 65535, 1000, 16) + el(0x7FE0, 0x0010, "OW", pixels)))
    write("synth-pixels-truncated.dcm",
          part10(basic() + image(4, 4) + el(0x7FE0, 0x0010, "OB", pixels[:5], length=16)))
    # The Pixel Data tag's bytes inside an earlier value (the commit's head search).
    write("synth-pixel-tag-in-value.dcm",
          part10(basic() + el(0x0009, 0x1001, "OB", b"\xe0\x7f\x10\x00OB\0\0\xff\xff\xff\xff") +
                 image(4, 4) + el(0x7FE0, 0x0010, "OB", pixels)))
    # Elements after Pixel Data, and a file without pixels.
    write("synth-after-pixels.dcm",
          part10(basic() + image(4, 4) + el(0x7FE0, 0x0010, "OB", pixels) +
                 el(0xFFFA, 0xFFFA, "SQ", b"") + el(0xFFFC, 0xFFFC, "OB", b"\0\0")))
    write("synth-after-pixels-overrun.dcm",
          part10(basic() + image(4, 4) + el(0x7FE0, 0x0010, "OB", pixels) +
                 el(0xFFFC, 0xFFFC, "OB", b"\0\0", length=0xFFFFFFF0)))
    write("synth-no-pixels.dcm", part10(basic()))
    # Character sets: ISO 2022 escapes cut short, and bytes invalid in the declared set.
    write("synth-charset-iso2022-broken.dcm",
          part10(el(0x0008, 0x0005, "CS", b"ISO 2022 IR 6\\ISO 2022 IR 87") + basic() +
                 el(0x0010, 0x1001, "PN", b"Yamada^\x1b$B;3ED\x1b(B=\x1b$")))
    write("synth-charset-utf8-invalid.dcm",
          part10(el(0x0008, 0x0005, "CS", b"ISO_IR 192") + basic() +
                 el(0x0008, 0x1030, "LO", b"\xc3\x28\xed\xa0\x80\xf4\x90\x80\x80\xff")))
    write("synth-charset-unknown.dcm",
          part10(el(0x0008, 0x0005, "CS", b"ISO_IR 999\\\\") + basic()))
    # A value over 64 KiB (cut with a marker) made of multi-byte characters, deflated so that
    # the seed stays small.
    long_value = el(0x0008, 0x0005, "CS", b"ISO_IR 192") + basic() + \
        el(0x0040, 0xA160, "UT", "\u00e9".encode() * 33000)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    write("synth-deflated-long-value.dcm",
          part10(deflater.compress(long_value) + deflater.flush(), DEFLATED))
    # Odd VRs and values, written by DCMTK.
    dump2dcm("synth-odd-vrs.dcm", ODD_DUMP)


ODD_DUMP = r"""(0002,0001) OB 00\01
(0002,0002) UI =SecondaryCaptureImageStorage
(0002,0003) UI [1.2.3.4.5.6.7]
(0002,0010) UI =LittleEndianExplicit
(0008,0005) CS [ISO_IR 100]
(0008,0016) UI =SecondaryCaptureImageStorage
(0008,0018) UI [1.2.3.4.5.6.7]
(0008,0020) DA [20261121]
(0008,0030) TM [235960.123456]
(0008,002a) DT [20261121103000.5+0100]
(0008,1030) LO [Odd VRs]
(0009,0010) LO [FUZZ PRIVATE]
(0009,1001) UN 01\02\03\04\05
(0009,1002) LO [private text]
(0010,0010) PN [M""" + "\xfc" + r"""ller^J""" + "\xf6" + r"""rg=Alpha^Beta]
(0010,0020) LO [ODD-1]
(0018,0050) DS [1.5\-2e3\ 7 ]
(0020,0013) IS [+12]
(0020,000d) UI [1.2.3.4.5.6.8]
(0020,9165) AT (0010,0010)\(7fe0,0010)
(0028,0030) DS [0.5\0.5]
(0018,9089) FD 1.5\-0.0\3.3e300
(0018,1314) DS [nan]
(0040,9212) FD nan
(0070,0022) FL 1.25\-3.5
(0018,6020) SL -7
(0018,1142) SS -32768
(0028,6050) US 65535
(0018,9310) UL 4294967295
(0072,0067) SV -9223372036854775808
(0072,0068) UV 18446744073709551615
(0008,0119) UC [Long unlimited character text]
(0008,0120) UR [http://example.com/a b]
(0040,a160) UT [text with\ backslash]
(0066,0040) OL 01020304\05060708
(0066,0024) OD 3ff0000000000000
(0066,0016) OF 3f800000
(0042,0011) OB 25\50\44\46
(0072,0073) OV 0102030405060708
"""

if __name__ == "__main__":
    main()
