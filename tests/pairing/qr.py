"""Read QR codes back with an independent decoder (zxing-cpp), from what people are shown:
the SVG the dashboard draws and the block characters `hivecall pair` prints."""

from __future__ import annotations

import re

import zxingcpp

Matrix = list[list[bool]]  # True = dark module


def decode(matrix: Matrix, *, scale: int = 6) -> list[str]:
    """The texts of the QR codes in a module matrix, rendered dark-on-light."""
    rows = []
    for line in matrix:
        pixels = bytes(0 if dark else 255 for dark in line for _ in range(scale))
        rows.extend([pixels] * scale)
    return decode_pixels(b"".join(rows), width=len(rows[0]), height=len(rows))


def decode_pixels(gray: bytes, *, width: int, height: int) -> list[str]:
    """The texts of the QR codes in a grayscale image, one byte per pixel, row by row."""
    image = memoryview(gray).cast("B", (height, width))
    return [b.text for b in zxingcpp.read_barcodes(image)]


def from_svg(svg: str) -> Matrix:
    """Modules of segno's SVG: one path of horizontal runs ("M4 4.5h7m2 0h5…"), 1 unit each."""
    size = int(re.search(r'viewBox="0 0 (\d+) \d+"', svg).group(1))  # type: ignore[union-attr]
    path = re.search(r'class="qrline"[^>]* d="([^"]+)"', svg).group(1)  # type: ignore[union-attr]
    matrix = [[False] * size for _ in range(size)]
    x = y = 0.0
    for op, a, b in re.findall(r"([Mmh])(-?[\d.]+)(?: (-?[\d.]+))?", path):
        if op == "M":
            x, y = float(a), float(b)
        elif op == "m":
            x, y = x + float(a), y + float(b)
        else:
            for i in range(int(float(a))):
                matrix[int(y)][int(x) + i] = True
            x += float(a)
    return matrix


# Compact terminal output: each character is two modules (top, bottom), drawn light-on-dark
# or dark-on-light; which one does not matter to a reader (zxing tries both).
_HALVES = {"█": (True, True), "▀": (True, False), "▄": (False, True), " ": (False, False)}


def from_terminal(text: str) -> Matrix:
    lines = [ln for ln in text.splitlines() if ln and set(ln) <= set(_HALVES)]
    matrix: Matrix = []
    for line in lines:
        top = [_HALVES[c][0] for c in line]
        bottom = [_HALVES[c][1] for c in line]
        matrix += [top, bottom]
    # The drawn blocks are the light modules (for dark terminals): turn them into dark ones.
    return [[not m for m in row] for row in matrix]
