#!/usr/bin/env python3
"""Generates store/dicom/deid_table.inc, the rows of DICOM PS3.15 Table E.1-1 (Application Level
Confidentiality Profile Attributes) for store/dicom/deid_profile.cc.

Inputs (facts of the standard, in machine-readable renditions):
  PROFILE     the table as JSON: a list of rows with "tag" "(gggg,eeee)", "name", and an action
              per column ("basicProfile", "rtnUIDsOpt", "rtnDevIdOpt", "rtnInstIdOpt",
              "rtnPatCharsOpt", "rtnLongFullDatesOpt", "rtnLongModifDatesOpt", "cleanDescOpt",
              ...), e.g. standard/confidentiality_profile_attributes.json of
              github.com/innolitics/dicom-standard, extracted from the standard's own pages
  ATTRIBUTES  PS3.6 as JSON (tag, keyword, valueRepresentation), e.g. standard/attributes.json
              of the same repository and revision
  DICTIONARY  DCMTK's data dictionary (dicom.dic): the keywords the rows carry where DCMTK knows
              the tag ("RETIRED_" dropped, as dicom_detail::KeywordOf does)

    store/dicom/deid_table_gen.py --edition 2024b --source "..." PROFILE ATTRIBUTES DICTIONARY \\
        > store/dicom/deid_table.inc

store/dicom/deid_table.inc in the tree was made from innolitics/dicom-standard at commit
8670abdd9ad16c61af5146ef857899699bdd9c5f ("Update standard to rev2024b"; its
confidentiality_profile_attributes.json has not changed since) and DCMTK 3.6.7's dictionary:

    git -C dicom-standard show 8670abdd:standard/confidentiality_profile_attributes.json >p.json
    git -C dicom-standard show 8670abdd:standard/attributes.json >a.json
    store/dicom/deid_table_gen.py --edition 2024b --source "github.com/innolitics/dicom-standard \
        commit 8670abdd9ad16c61af5146ef857899699bdd9c5f ('Update standard to rev2024b'), \
        standard/confidentiality_profile_attributes.json and standard/attributes.json; \
        DCMTK 3.6.7 dicom.dic" p.json a.json /usr/share/libdcmtk17/dicom.dic \
        >store/dicom/deid_table.inc

Rows whose tag is a pattern (curves 50xx, overlays 60xx, private groups) are not emitted:
store/dicom/deid.cc handles them by group; the generator checks that the table still has exactly
those. It fails when a row has no Basic Profile action or an action it does not know.
"""
import argparse
import json
import re
import sys

ACTIONS = {"X": "kX", "Z": "kZ", "D": "kD", "U": "kU", "K": "kK", "C": "kC", "Z/D": "kZD",
           "X/Z": "kXZ", "X/D": "kXD", "X/Z/D": "kXZD", "X/Z/U*": "kXZU"}
# JSON column -> OptionActions field (the options medvfs offers).
OPTIONS = [("rtnUIDsOpt", "uids"), ("rtnDevIdOpt", "device"), ("rtnInstIdOpt", "institution"),
           ("rtnPatCharsOpt", "patient"), ("rtnLongFullDatesOpt", "full_dates"),
           ("rtnLongModifDatesOpt", "modified_dates"), ("cleanDescOpt", "descriptors")]
# Columns medvfs does not offer (Clean Graphics, Clean Structured Content, Retain Safe
# Private): their rows keep the Basic Profile's action.
IGNORED = {"cleanGraphOpt", "cleanStructContOpt", "rtnSafePrivOpt"}
KNOWN_KEYS = {"name", "tag", "id", "stdCompIOD", "basicProfile"} | IGNORED | {c for c, _ in OPTIONS}
PATTERNS = {"(50XX,XXXX)", "(60XX,3000)", "(60XX,4000)", "(GGGG,EEEE) WHERE GGGG IS ODD"}
# Command-group attributes PS3.6 does not list (they are in PS3.7).
COMMAND_VRS = {0x00001000: "UI", 0x00001001: "UI"}


def read_dictionary(path):
    words = {}
    for line in open(path, encoding="latin-1"):
        m = re.match(r"\(([0-9A-F]{4}),([0-9A-F]{4})\)\t(\S+)\t(\S+)\t", line)
        if m:
            tag = int(m.group(1) + m.group(2), 16)
            words[tag] = (m.group(4).removeprefix("RETIRED_"), m.group(3))
    return words


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--edition", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("profile")
    parser.add_argument("attributes")
    parser.add_argument("dictionary")
    args = parser.parse_args()
    rows = json.load(open(args.profile))
    attributes = {int(a["id"], 16): a for a in json.load(open(args.attributes))
                  if re.fullmatch(r"[0-9a-fA-F]{8}", a["id"])}
    dcmtk = read_dictionary(args.dictionary)
    out, patterns, unknown = [], set(), 0
    for row in rows:
        if row["tag"] in PATTERNS:
            patterns.add(row["tag"])
            continue
        m = re.fullmatch(r"\(([0-9A-F]{4}),([0-9A-F]{4})\)", row["tag"])
        if not m:
            sys.exit(f"row {row['tag']}: a tag the generator does not know")
        extra = set(row) - KNOWN_KEYS
        if extra:
            sys.exit(f"row {row['tag']}: unknown columns {sorted(extra)}")
        tag = int(m.group(1) + m.group(2), 16)
        basic = row.get("basicProfile", "")
        if basic not in ACTIONS:
            sys.exit(f"row {row['tag']}: Basic Profile action {basic!r} is not one of {list(ACTIONS)}")
        options = []
        for column, field in OPTIONS:
            if column in row:
                if row[column] not in ACTIONS:
                    sys.exit(f"row {row['tag']}: {column} action {row[column]!r} unknown")
                options.append(f".{field} = {ACTIONS[row[column]]}")
        standard = attributes.get(tag, {})
        vr = standard.get("valueRepresentation", COMMAND_VRS.get(tag, ""))
        if tag in dcmtk:
            keyword, known = dcmtk[tag][0], "true"
        else:
            keyword, known = standard.get("keyword", ""), "false"
            unknown += 1
        if not keyword or not vr:
            sys.exit(f"row {row['tag']}: no keyword or VR in PS3.6 nor in DCMTK's dictionary")
        out.append((tag, f'    {{0x{tag:08X}, "{keyword}", "{vr}", {known}, {ACTIONS[basic]}, '
                         f'{{{", ".join(options)}}}}},'))
    if patterns != PATTERNS:
        sys.exit(f"patterned rows changed: {sorted(patterns ^ PATTERNS)}; update deid.cc")
    out.sort()
    print(f"// DICOM PS3.15 {args.edition}, Table E.1-1 (Application Level Confidentiality Profile")
    print("// Attributes): generated by store/dicom/deid_table_gen.py, do not edit.")
    print(f"// Source: {args.source}.")
    print(f"// {len(out)} rows ({unknown} of them unknown to DCMTK's dictionary: keyword from PS3.6);")
    print("// patterned rows (50xx curves, 60xx overlay data and comments, private groups) are")
    print("// handled in store/dicom/deid.cc.")
    print("// Row: tag, keyword, VR (PS3.6), known to DCMTK, Basic Profile action, option actions.")
    print("// clang-format off")
    for _, line in out:
        print(line)
    print("// clang-format on")


if __name__ == "__main__":
    main()
