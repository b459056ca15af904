#!/usr/bin/env python3
"""The errors in a valgrind --xml report that footprint's own code makes: its innermost frame is
in footprint's objects (libfootprint.so, footprint/_core), or it is an invalid read, write or free
with footprint's code anywhere on the stack. Leaks at exit are not errors (CPython leaves its
objects to the OS); what CPython, the loader and LibTorch report in their own code is theirs:
summarized, not counted. Exit status 1 when any error counts.

    python3 tools/valgrind_errors.py valgrind.xml
"""
import collections
import sys
import xml.etree.ElementTree as ET


def ours(obj):
    """By file name: a virtual environment's path may hold "footprint" for every library in it."""
    name = obj.rsplit("/", 1)[-1]
    return name.startswith("libfootprint") or (name.startswith("_core.") and "/footprint/" in obj)


def main():
    errors = [e for e in ET.parse(sys.argv[1]).getroot().findall("error")
              if not e.findtext("kind").startswith("Leak_")]
    counted, theirs = [], collections.Counter()
    for e in errors:
        objs = [f.findtext("obj") or "" for f in e.iter("frame")]
        invalid = e.findtext("kind").startswith(("Invalid", "Mismatched", "Overlap"))
        if (objs and ours(objs[0])) or (invalid and any(ours(o) for o in objs)):
            counted.append(e)
        else:
            theirs[(e.findtext("kind"), objs[0].rsplit("/", 1)[-1] if objs else "?",
                    "footprint on the stack" if any(ours(o) for o in objs) else "")] += 1
    print(f"valgrind: {len(counted)} errors in footprint's code; elsewhere: "
          + (", ".join(f"{n} {' '.join(k for k in key if k)}" for key, n in theirs.items()) or "none"))
    for e in counted[:5]:
        print(" ", e.findtext("kind"), [(f.findtext("fn") or "?")[:60] for f in e.iter("frame")][:4])
    sys.exit(1 if counted else 0)


if __name__ == "__main__":
    main()
