"""Upload checks: what a file really is (from its bytes), whether we accept it, and a safe display name.

The client's name and Content-Type are claims; only the magic bytes decide the type. A file whose claim
and content disagree (``photo.png`` holding a PDF, an ELF or HTML) is rejected rather than "corrected",
because that mismatch is how disguised payloads travel.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from api.errors import ProblemError

PNG, JPEG, GIF, WEBP, PDF, TEXT, CSV = (
    "image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain", "text/csv",
)
ALLOWED_TYPES = frozenset({PNG, JPEG, GIF, WEBP, PDF, TEXT, CSV})
IMAGE_TYPES = frozenset({PNG, JPEG, GIF, WEBP})

EXTENSION_TYPES = {
    "png": PNG, "jpg": JPEG, "jpeg": JPEG, "jpe": JPEG, "gif": GIF, "webp": WEBP, "pdf": PDF,
    "txt": TEXT, "text": TEXT, "md": TEXT, "log": TEXT, "csv": CSV,
}
CANONICAL_EXTENSION = {PNG: "png", JPEG: "jpg", GIF: "gif", WEBP: "webp", PDF: "pdf", TEXT: "txt", CSV: "csv"}

# Signatures of formats we refuse, so the error can say what the file really is.
_KNOWN_OTHER = (
    (b"\x7fELF", "an ELF executable"),
    (b"MZ", "a Windows executable"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\xca\xfe\xba\xbe", "a Mach-O or Java class file"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O executable"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7z archive"),
)
# Text that a browser would render as active content if it were ever served inline.
_MARKUP = re.compile(rb"<\s*(!doctype|html|head|body|script|svg|iframe|object|embed|\?xml)\b", re.IGNORECASE)
# Control characters other than tab, LF, FF and CR do not occur in honest text files.
_BINARY_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_SNIFF_WINDOW = 64 * 1024


class ContentTooLarge(ProblemError):
    """413: the upload exceeds ``max_upload_bytes``. (Candidate for api/errors.py once others need it.)"""

    status, title, type_slug = 413, "Content Too Large", "too-large"


class UploadRejectedError(ValueError):
    """The upload is not acceptable; the message is safe to show to the client."""


def sniff(data: bytes) -> str | None:
    """The content type ``data`` really has (one of ALLOWED_TYPES, text/csv reported as text/plain), or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    if data.startswith(b"%PDF-"):
        return PDF
    if _is_plain_text(data):
        return TEXT
    return None


def _is_plain_text(data: bytes) -> bool:
    # The whole file, not a prefix: markup or binary further in must not ride along as "text".
    if not data.strip() or _BINARY_CONTROL.search(data) or _MARKUP.search(data):
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def describe(data: bytes) -> str:
    """A short human description of what ``data`` looks like, for error messages."""
    for signature, what in _KNOWN_OTHER:
        if data.startswith(signature):
            return what
    if _MARKUP.search(data[:_SNIFF_WINDOW]):
        return "HTML or XML markup"
    found = sniff(data)
    return found if found is not None else "an unrecognised binary format"


_UNSAFE_NAME_CHARS = re.compile(r'[\\/:*?"<>|]')


def _clean_name(raw: str | None) -> str:
    name = unicodedata.normalize("NFC", raw or "")
    # Clients send both separators (Windows paths); keep only what follows the last one.
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = _UNSAFE_NAME_CHARS.sub("_", name)
    name = re.sub(r"\s+", " ", name).strip()
    # Leading dots would make hidden files or '..'; trailing dots and spaces confuse Windows.
    name = name.lstrip(". ").rstrip(". ")
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = f"{stem[: 199 - len(ext)]}.{ext}" if dot and 0 < len(ext) <= 10 else name[:200]
    return name


def sanitize_filename(raw: str | None, fallback_extension: str) -> str:
    """A display name safe to store and echo: last path segment, no control or path characters, <= 200 chars.

    It is only ever shown to people; storage keys never derive from it.
    """
    return _clean_name(raw) or f"file.{fallback_extension}"


def extension_of(name: str) -> str | None:
    """Lower-case extension of ``name`` without the dot, if it has one."""
    stem, dot, ext = name.rpartition(".")
    return ext.lower() if dot and stem else None


@dataclass(frozen=True)
class CheckedUpload:
    """An accepted upload: its real type and the name to show for it."""

    content_type: str
    filename: str

    @property
    def is_image(self) -> bool:
        """Whether /api/images may serve it."""
        return self.content_type in IMAGE_TYPES


def _compatible(claimed: str, real: str) -> bool:
    # CSV has no signature: any plain text may be called CSV (or a .txt may hold CSV).
    return claimed == real or {claimed, real} <= {TEXT, CSV}


def check_upload(data: bytes, filename: str | None, declared_type: str | None) -> CheckedUpload:
    """Accept ``data`` if its real type is allowed and agrees with its name and declared type.

    Raises UploadRejectedError otherwise (disguised, unsupported or empty files).
    """
    if not data:
        raise UploadRejectedError("The file is empty.")
    real = sniff(data)
    if real is None:
        raise UploadRejectedError(
            f"Unsupported file type: the content is {describe(data)}. "
            "Allowed: PNG, JPEG, GIF, WebP, PDF, plain text, CSV."
        )
    name = _clean_name(filename)
    ext = extension_of(name)
    if ext is not None:
        claimed = EXTENSION_TYPES.get(ext)
        if claimed is None:
            raise UploadRejectedError(f"Files named .{ext} are not accepted.")
        if not _compatible(claimed, real):
            raise UploadRejectedError(f"The file is named .{ext} but its content is {describe(data)}.")
        real = CSV if claimed == CSV else real
    declared = (declared_type or "").split(";")[0].strip().lower()
    if declared in ALLOWED_TYPES and not _compatible(declared, real):
        raise UploadRejectedError(f"The file was sent as {declared} but its content is {describe(data)}.")
    if ext is None and declared == CSV and real == TEXT:
        real = CSV
    return CheckedUpload(content_type=real, filename=name or f"file.{CANONICAL_EXTENSION[real]}")
