#!/usr/bin/env python3
"""Development-time generator of unicode_normalization.txt (goldens for TokenizerUnicodeTests).

Line format: `hash <form> <sha256>` = SHA-256 of "\n".join(normalize(form, chr(cp)) for every
scalar value cp) in UTF-8; then `case <input> <NFC> <NFD> <NFKC> <NFKD>` with each field a
dot-separated list of hex code points (random sequences stressing reordering and composition).
"""
import hashlib
import random
import unicodedata as ud

FORMS = ["NFC", "NFD", "NFKC", "NFKD"]
print(f"# Python unicodedata {ud.unidata_version}")
for f in FORMS:
    h = hashlib.sha256("\n".join(ud.normalize(f, chr(cp)) for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF).encode("utf-8"))
    print(f"hash {f} {h.hexdigest()}")

pool = []
pool += list(range(0x41, 0x5B)) + list(range(0x61, 0x7B))            # ASCII letters
pool += list(range(0xC0, 0x180))                                      # Latin-1 / Extended-A composites
pool += list(range(0x300, 0x370))                                     # combining diacritics (many classes)
pool += [0x1E9B, 0x1E0A, 0x1E0C, 0x1EA0, 0x1EC7, 0x212B, 0x2126, 0x212A, 0x344, 0x343, 0x340, 0x0F73, 0x0F75, 0x0F81]
pool += list(range(0x1100, 0x1113)) + list(range(0x1161, 0x1176)) + list(range(0x11A8, 0x11C3))  # Hangul jamo
pool += [0xAC00, 0xAC01, 0xD7A3, 0xB098, 0xD55C]                      # Hangul syllables
pool += [0xFB01, 0x2460, 0xFF76, 0xFF9E, 0x3099, 0x309A, 0x304B, 0x30AB, 0x00BD, 0x2075, 0x33A1, 0xFDFA]
pool += [0x0915, 0x093C, 0x0958, 0x05D0, 0x05B8, 0x05BC, 0x064E, 0x0651, 0x0650, 0x0E01, 0x0E48, 0x0E34]
pool += [0x1D15E, 0x1D160, 0x1D165, 0x1D16E, 0x1D400, 0x1F600, 0x2F800, 0x110BA, 0x11099, 0x1109A]
pool += [0x3B1, 0x391, 0x3B9, 0x1FBE, 0x385, 0x3D2, 0x3D3, 0x20, 0xA0, 0x2002]
rng = random.Random(1234)


def enc(s):
    return ".".join(f"{ord(c):X}" for c in s) or "-"


for i in range(600):
    n = rng.randint(1, 8)
    s = "".join(chr(rng.choice(pool)) for _ in range(n))
    print("case", enc(s), *(enc(ud.normalize(f, s)) for f in FORMS))
