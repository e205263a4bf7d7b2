#!/usr/bin/env python3
"""Sends one C-STORE with a data set cut short, as no well-behaved SCU would (for the tests of
`medvfs receive`). Python 3 standard library only: a minimal DICOM upper-layer client.

usage: dicom_raw_store.py HOST PORT CALLED_AET FILE KEEP_BYTES

FILE is a DICOM Part 10 file; its data set (after the File Meta Information) is sent in the
file's transfer syntax, but only its first KEEP_BYTES bytes, properly framed as the last
fragment. Prints the C-STORE-RSP status as 4 hex digits (e.g. "C000") and exits 0, or prints
why it could not and exits 1.
"""
import socket
import struct
import sys


def meta_elements(data):
    """The File Meta Information of a Part 10 file: {(group, element): bytes}, and its end."""
    if data[128:132] != b"DICM":
        raise ValueError("not a DICOM Part 10 file")
    at, elements = 132, {}
    while at + 8 <= len(data):
        group, element = struct.unpack_from("<HH", data, at)
        if group != 0x0002:
            break
        vr = data[at + 4:at + 6]
        if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT", b"UC", b"UR"):
            length = struct.unpack_from("<I", data, at + 8)[0]
            start = at + 12
        else:
            length = struct.unpack_from("<H", data, at + 6)[0]
            start = at + 8
        elements[(group, element)] = data[start:start + length]
        at = start + length
    return elements, at


def uid(value):
    return value.rstrip(b"\0 ")


def even(value, pad=b"\0"):
    return value + pad if len(value) % 2 else value


def item(item_type, payload):
    return struct.pack(">BBH", item_type, 0, len(payload)) + payload


def associate_rq(called, calling, sop_class, transfer_syntax):
    context = struct.pack(">BBBB", 1, 0, 0, 0) + item(0x30, sop_class) + item(0x40, transfer_syntax)
    user = item(0x51, struct.pack(">I", 16384)) + item(0x52, b"1.2.826.0.1.3680043.9.7433.1")
    body = struct.pack(">HH", 1, 0) + called.ljust(16)[:16] + calling.ljust(16)[:16] + bytes(32)
    body += item(0x10, b"1.2.840.10008.3.1.1.1") + item(0x20, context) + item(0x50, user)
    return struct.pack(">BBI", 0x01, 0, len(body)) + body


def implicit_element(group, element, value):
    return struct.pack("<HHI", group, element, len(value)) + value


def store_command(sop_class, sop_instance):
    elements = (implicit_element(0x0000, 0x0002, even(sop_class))
                + implicit_element(0x0000, 0x0100, struct.pack("<H", 0x0001))
                + implicit_element(0x0000, 0x0110, struct.pack("<H", 1))
                + implicit_element(0x0000, 0x0700, struct.pack("<H", 0))
                + implicit_element(0x0000, 0x0800, struct.pack("<H", 0x0000))
                + implicit_element(0x0000, 0x1000, even(sop_instance)))
    return implicit_element(0x0000, 0x0000, struct.pack("<I", len(elements))) + elements


def p_data(control, payload):
    pdv = struct.pack(">IBB", len(payload) + 2, 1, control) + payload
    return struct.pack(">BBI", 0x04, 0, len(pdv)) + pdv


def read_pdu(sock):
    header = b""
    while len(header) < 6:
        chunk = sock.recv(6 - len(header))
        if not chunk:
            raise ConnectionError("the SCP closed the connection")
        header += chunk
    pdu_type, _, length = struct.unpack(">BBI", header)
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        if not chunk:
            raise ConnectionError("the SCP closed the connection")
        body += chunk
    return pdu_type, body


def status_of(command):
    at = 0
    while at + 8 <= len(command):
        group, element, length = struct.unpack_from("<HHI", command, at)
        if (group, element) == (0x0000, 0x0900):
            return struct.unpack_from("<H", command, at + 8)[0]
        at += 8 + length
    raise ValueError("no status in the response")


def main(argv):
    host, port, called, path, keep = argv[1], int(argv[2]), argv[3].encode(), argv[4], int(argv[5])
    data = open(path, "rb").read()
    meta, data_start = meta_elements(data)
    sop_class, sop_instance = uid(meta[(2, 2)]), uid(meta[(2, 3)])
    dataset = data[data_start:data_start + keep]
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(associate_rq(called, b"RAWSCU", sop_class, uid(meta[(2, 0x10)])))
        pdu_type, _ = read_pdu(sock)
        if pdu_type != 0x02:
            print("association not accepted (PDU type %d)" % pdu_type)
            return 1
        sock.sendall(p_data(0x03, store_command(sop_class, sop_instance)))
        for start in range(0, max(len(dataset), 1), 8192):
            last = start + 8192 >= len(dataset)
            sock.sendall(p_data(0x02 if last else 0x00, dataset[start:start + 8192]))
        pdu_type, body = read_pdu(sock)
        if pdu_type != 0x04:
            print("no C-STORE response (PDU type %d)" % pdu_type)
            return 1
        print("%04X" % status_of(body[6:]))
        sock.sendall(struct.pack(">BBI", 0x05, 0, 4) + bytes(4))
        read_pdu(sock)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
