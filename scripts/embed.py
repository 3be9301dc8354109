#!/usr/bin/env python3
"""Writes a file's bytes as a C array (a page the library writes out):
embed.py INPUT OUTPUT NAME -> `static const char NAME[] = {...};` (NUL-terminated)."""
import sys

data = open(sys.argv[1], 'rb').read() + b'\0'
name = sys.argv[3]
with open(sys.argv[2], 'w') as out:
    out.write('/* generated from %s by scripts/embed.py */\n' % sys.argv[1].split('/')[-1])
    out.write('static const char %s[] = {\n' % name)
    for i in range(0, len(data), 16):
        out.write('    ' + ', '.join('0x%02x' % b for b in data[i:i + 16]) + ',\n')
    out.write('};\n')
