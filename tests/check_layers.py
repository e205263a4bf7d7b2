#!/usr/bin/env python3
"""Checks the layering of store/ (store/CMakeLists.txt): that no file includes a store header
of a layer it must not see, and that no public header reaches a third-party header.

    tests/check_layers.py [SOURCE_DIR]            exit 1 and list every violation
    tests/check_layers.py --graph [SOURCE_DIR]    the include counts per pair of layers
    tests/check_layers.py --self-test             the check finds planted violations

Layers, lowest first. A file may include headers of the layers listed for its own:
    base     store/{status,log,bytes,tsv,posix_acl}.*, store/file_util.h base
    crypto   store/crypto/, store/keys.h                       base crypto
    engine   store/engine/                                     base crypto engine
    dicom    store/dicom/, store/dicom_files.h                 base crypto dicom
    s3       store/s3/ (the S3 client)                         base s3
    archive  store/archive/, store/{archive,audit,verify,views,diff}.h   everything in store/
    client   fs/, tools/                                       base and the public headers
The public headers are the headers at store/ top other than the base ones: keys.h (of crypto),
dicom_files.h (of dicom) and archive.h, audit.h, verify.h, views.h, diff.h (of archive). Neither they, nor the base
headers, nor any store header they include (transitively) may include a third-party header:
fs/ and tools/ see none through store/.
"""
import os
import re
import sys
from collections import Counter

BASE = {"store/status.h", "store/status.cc", "store/log.h", "store/log.cc", "store/bytes.h",
        "store/bytes.cc", "store/tsv.h", "store/tsv.cc", "store/posix_acl.h", "store/posix_acl.cc",
        "store/file_util.h"}
# Each public header, with the layer that implements it.
PUBLIC = {"store/keys.h": "crypto", "store/archive.h": "archive", "store/audit.h": "archive",
          "store/verify.h": "archive", "store/views.h": "archive", "store/diff.h": "archive",
          "store/dicom_files.h": "dicom"}
ALLOWED = {
    "base": {"base"},
    "crypto": {"base", "crypto"},
    "engine": {"base", "crypto", "engine"},
    "dicom": {"base", "crypto", "dicom"},
    "s3": {"base", "s3"},
    "archive": {"base", "crypto", "engine", "dicom", "s3", "archive"},
    "client": {"base", "public"},
}
# Include prefixes of the third-party libraries the project uses.
THIRD_PARTY = re.compile(
    r"^(rocksdb/|openssl/|nlohmann/|dcmtk/|zstd|png|jpeg|fuse|CLI/|gtest/|gmock/|benchmark/|curl/"
    r"|tinyxml2|ini\.h)")
INCLUDE = re.compile(r'^\s*#\s*include\s+([<"])([^>"]+)[>"]')
SOURCE_SUFFIXES = (".h", ".cc", ".inc")


def layer_of(path):
    """The layer of a file given relative to the source root, or None when unchecked."""
    if path.startswith("store/"):
        rest = path[len("store/"):]
        if "/" in rest:
            sub = rest.split("/", 1)[0]
            return sub if sub in ALLOWED else "unknown"
        if path in BASE:
            return "base"
        if path in PUBLIC:
            return PUBLIC[path]
        return "unknown"
    if path.startswith(("fs/", "tools/")):
        return "client"
    return None


def includes_of(root, path):
    """(kind, target) for each #include of a file: kind '<' or '"'."""
    found = []
    with open(os.path.join(root, path), encoding="utf-8", errors="replace") as f:
        for line in f:
            m = INCLUDE.match(line)
            if m:
                found.append((m.group(1), m.group(2)))
    return found


def source_files(root):
    for top in ("store", "fs", "tools"):
        for dirpath, _, names in os.walk(os.path.join(root, top)):
            for name in names:
                if name.endswith(SOURCE_SUFFIXES):
                    yield os.path.relpath(os.path.join(dirpath, name), root)


def check(root):
    problems = []
    files = sorted(source_files(root))
    graph = {f: includes_of(root, f) for f in files}
    for path in files:
        layer = layer_of(path)
        if layer == "unknown":
            problems.append(f"{path}: not in a layer (store/ top holds only the base files and "
                            "the public headers)")
            continue
        for _, target in graph[path]:
            target_layer = layer_of(target) if target.startswith("store/") else None
            if target_layer is None:
                continue
            if layer == "client" and target in PUBLIC:
                continue
            if target_layer not in ALLOWED[layer]:
                problems.append(f"{path} ({layer}) includes {target} ({target_layer})")
    # No third-party header behind a public or base header.
    for start in sorted(p for p in files if (p in PUBLIC or p in BASE) and p.endswith(".h")):
        seen, stack = set(), [(start, [start])]
        while stack:
            path, chain = stack.pop()
            if path in seen or path not in graph:
                continue
            seen.add(path)
            for _, target in graph[path]:
                if THIRD_PARTY.match(target):
                    problems.append(f"{start} reaches the third-party header {target} through "
                                    + " -> ".join(chain))
                elif target.startswith("store/"):
                    stack.append((target, chain + [target]))
    return problems, graph


def print_graph(graph):
    pairs = Counter()
    for path, targets in graph.items():
        for _, target in targets:
            if target.startswith("store/"):
                source_layer, target_layer = layer_of(path), layer_of(target)
                if target in PUBLIC:
                    target_layer += "(pub)"
                pairs[(source_layer, target_layer)] += 1
    for (source, target), count in sorted(pairs.items()):
        print(f"{source:8} -> {target:8} {count}")


def self_test():
    """Plants each kind of violation in a scratch tree; the check must report exactly those."""
    import tempfile
    files = {
        "store/status.h": "#include <string>\n",
        "store/archive.h": '#include "store/status.h"\n#include "store/engine/kv.h"\n',
        "store/engine/kv.h": '#include "store/status.h"\n',
        "store/archive/impl.cc": '#include "store/archive.h"\n#include "store/dicom/parse.h"\n',
        "store/dicom/parse.h": "#include <vector>\n",
        "store/s3/s3_client.h": '#include "store/status.h"\n',
        "store/archive/remote.cc": '#include "store/s3/s3_client.h"\n',
        "fs/ops.cc": '#include "store/archive.h"\n#include "store/status.h"\n',
    }
    planted = {
        "store/engine/chunks.cc": '#include "store/archive/impl.h"\n',      # engine -> archive
        "store/dicom/deid.cc": '#include "store/engine/kv.h"\n',            # dicom -> engine
        "store/s3/s3_http.cc": '#include "store/engine/kv.h"\n',            # s3 -> engine
        "tools/cmd.cc": '#include "store/engine/kv.h"\n',                   # client -> engine
        "store/stray.cc": "\n",                                             # not in a layer
        "store/verify.h": '#include "store/dicom/leaky.h"\n',               # third party behind
        "store/dicom/leaky.h": "#include <rocksdb/db.h>\n",                 # a public header
    }
    with tempfile.TemporaryDirectory() as root:
        def write(tree):
            for path, text in tree.items():
                os.makedirs(os.path.dirname(os.path.join(root, path)), exist_ok=True)
                with open(os.path.join(root, path), "w", encoding="utf-8") as f:
                    f.write(text)
        write(files)
        clean, _ = check(root)
        write(planted)
        found, _ = check(root)
    expected = ["store/engine/chunks.cc", "store/dicom/deid.cc", "store/s3/s3_http.cc",
                "tools/cmd.cc", "store/stray.cc",
                "store/verify.h reaches the third-party header rocksdb/db.h"]
    missed = [e for e in expected if not any(problem.startswith(e) for problem in found)]
    if clean or missed or len(found) != len(expected):
        print("clean tree:", clean, "\nfound:", found, "\nmissed:", missed)
        return 1
    print(f"the check reports all {len(expected)} planted violations and none in the clean tree")
    return 0


def main(argv):
    if "--self-test" in argv:
        return self_test()
    graph_only = "--graph" in argv
    args = [a for a in argv if a != "--graph"]
    root = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    problems, graph = check(root)
    if graph_only:
        print_graph(graph)
        return 0
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} layering violation(s); see tests/check_layers.py for the rules")
        return 1
    print(f"{len(graph)} files follow the layers")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
