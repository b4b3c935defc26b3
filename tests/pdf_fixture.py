"""Small VALID files for tests and benchmarks: uploads are parsed (pypdf, Pillow), so a
bare ``%PDF-1.4`` prefix is no longer a document."""

from __future__ import annotations

import io


def make_pdf(label: str = "documento", size: int | None = None) -> bytes:
    """A one-page PDF that names ``label``; ``size`` pads it to exactly that many bytes
    (with a comment after the header, offsets computed after the padding)."""
    text = label.encode("latin-1", "replace").replace(b"\\", b"\\\\")
    text = text.replace(b"(", b"\\(").replace(b")", b"\\)")
    content = b"BT /F1 12 Tf 72 770 Td (" + text + b") Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]

    def build(padding: int) -> bytes:
        out = bytearray(b"%PDF-1.4\n")
        if padding:
            out += b"%" + b"0" * (padding - 2) + b"\n"
        offsets = []
        for number, body in enumerate(objects, start=1):
            offsets.append(len(out))
            out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
        xref = len(out)
        out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
        for offset in offsets:
            out += b"%010d 00000 n \n" % offset
        out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
            len(objects) + 1, xref)
        return bytes(out)

    data = build(0)
    if size is None or size == len(data):
        return data
    if size < len(data) + 2:
        raise ValueError(f"a valid PDF needs at least {len(data) + 2} bytes")
    # The xref offsets grow with the padding; two passes settle the digits.
    padded = build(size - len(data))
    padded = build(size - len(data) - (len(padded) - size))
    assert len(padded) == size, (len(padded), size)
    return padded


def make_png(label: str = "imagem") -> bytes:
    """A small PNG whose pixels depend on ``label`` (distinct labels, distinct hashes)."""
    from PIL import Image

    seed = sum(label.encode()) % 256
    from PIL import PngImagePlugin

    image = Image.new("RGB", (8, 8), (seed, 255 - seed, len(label) % 256))
    # The label travels in a text chunk so that two labels never share a hash.

    info = PngImagePlugin.PngInfo()
    info.add_text("label", label)
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def make_jpeg(label: str = "foto") -> bytes:
    from PIL import Image

    seed = sum(label.encode()) % 256
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (seed, 0, 255 - seed)).save(out, format="JPEG", comment=label.encode())
    return out.getvalue()
