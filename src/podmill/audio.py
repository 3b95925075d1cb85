"""What a file is (sniffing its first bytes) and how long it plays (probing it).

Sniffing is cheap and needs only the head of a file, so the downloader can refuse an
HTML error page before it lands on disk. Probing opens the whole file with PyAV and is
the authority on whether the bytes are decodable audio.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from podmill.errors import AudioError, MissingExtraError

log = logging.getLogger(__name__)

# Enough for every signature below, an ID3 tag without cover art, and two MPEG frames.
SNIFF_BYTES = 8192

_ID3_HEADER = 10
_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
_M4A_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}

# MPEG audio bitrates in kbit/s, indexed by the 4-bit field; 0 = free format.
_MPEG1_BITRATES = {
    1: (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    2: (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    3: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
}
_MPEG2_BITRATES = {
    1: (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    3: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
# version field → sample rates; 1 is reserved.
_MPEG_SAMPLE_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def sniff_audio(head: bytes) -> str | None:
    """Name the audio container (or codec) the first bytes of a file announce.

    Returns one of ``mp3``, ``aac`` (ADTS), ``flac``, ``ogg`` (Vorbis and other Ogg
    codecs), ``opus``, ``wav``, ``aiff``, ``m4a``, ``mp4``, ``mov``, ``webm``, ``mka``,
    ``caf``, ``amr``, ``wma``, ``au``, or ``None`` when the bytes are not a format we know.
    Pass at least :data:`SNIFF_BYTES` bytes when the file has that many. A match says
    what the file claims to be, not that it decodes: :func:`probe_duration` decides that.
    """
    if _id3_size(head) is not None:
        return _sniff_after_id3(head)
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"OggS"):
        return "opus" if b"OpusHead" in head[:64] else "ogg"
    if head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"FORM") and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _M4A_BRANDS:
            return "m4a"
        return "mov" if brand == b"qt  " else "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm" if b"webm" in head[:64] else "mka"
    if head.startswith(b"caff"):
        return "caf"
    if head.startswith(b"#!AMR"):
        return "amr"
    if head.startswith(_ASF_GUID):
        return "wma"
    if head.startswith(b".snd"):
        return "au"
    return _sniff_mpeg_frames(head, 0)


def _id3_size(head: bytes) -> int | None:
    """Bytes taken by a leading ID3v2 tag, header and footer included; None if absent."""
    if not head.startswith(b"ID3") or len(head) < _ID3_HEADER:
        return None
    # The size is "syncsafe": four bytes of seven bits each, excluding the header.
    size = 0
    for byte in head[6:10]:
        size = (size << 7) | (byte & 0x7F)
    return _ID3_HEADER + size + (10 if head[5] & 0x10 else 0)  # footer flag


def _sniff_after_id3(head: bytes) -> str | None:
    offset = _id3_size(head) or 0
    # Some taggers pad beyond the declared size with zeros.
    while offset < len(head) and head[offset] == 0:
        offset += 1
    if offset >= len(head):
        return "mp3"  # a long tag (cover art) hides the frames; ID3 nearly always means MP3
    if head.startswith(b"fLaC", offset):
        return "flac"
    return _sniff_mpeg_frames(head, offset) or "mp3"


def _sniff_mpeg_frames(head: bytes, offset: int) -> str | None:
    """``mp3``/``aac`` when an MPEG audio or ADTS frame header sits at ``offset``.

    When the head is long enough, the next frame header must follow where the first
    frame's length says, which keeps binary data that happens to start 0xFF out.
    """
    kind_length = _mpeg_frame(head, offset)
    if kind_length is None:
        return None
    kind, length = kind_length
    following = offset + length
    if length and following + 4 <= len(head):
        second = _mpeg_frame(head, following)
        if second is None or second[0] != kind:
            return None
    return kind


def _mpeg_frame(head: bytes, offset: int) -> tuple[str, int] | None:
    """(``mp3`` or ``aac``, frame length in bytes; 0 if unknown) for a header at offset."""
    frame = head[offset : offset + 6]
    if len(frame) < 4 or frame[0] != 0xFF or frame[1] & 0xE0 != 0xE0:
        return None
    if frame[1] & 0xF6 == 0xF0:  # 12-bit sync, layer 00: ADTS AAC
        if (frame[2] >> 2) & 0x0F > 12 or len(frame) < 6:
            return None
        length = ((frame[3] & 0x03) << 11) | (frame[4] << 3) | (frame[5] >> 5)
        return ("aac", length) if length >= 7 else None
    version = (frame[1] >> 3) & 0x03
    layer = 4 - ((frame[1] >> 1) & 0x03)  # field 3 = layer I, 1 = layer III
    bitrate_index = frame[2] >> 4
    rate_index = (frame[2] >> 2) & 0x03
    if version == 1 or layer == 4 or bitrate_index == 15 or rate_index == 3:
        return None
    table = _MPEG1_BITRATES if version == 3 else _MPEG2_BITRATES
    bitrate = table[layer][bitrate_index] * 1000
    sample_rate = _MPEG_SAMPLE_RATES[version][rate_index]
    padding = (frame[2] >> 1) & 0x01
    if bitrate == 0:
        length = 0
    elif layer == 1:
        length = (12 * bitrate // sample_rate + padding) * 4
    elif layer == 3 and version != 3:
        length = 72 * bitrate // sample_rate + padding
    else:
        length = 144 * bitrate // sample_rate + padding
    return "mp3", length


def describe_non_audio(head: bytes) -> str:
    """Say in a few words what a file is, for errors about files that are not audio.

    For example "an HTML page", "a JSON document", "XML", "a PDF", "a ZIP archive",
    "an empty file", ``text ("Access denied")`` or
    "unrecognised binary data (first bytes 0x…)".
    """
    known = identify_non_audio(head)
    if known is not None:
        return known
    return f"unrecognised binary data (first bytes 0x{head[:8].hex()})"


def describe_served(head: bytes) -> str:
    """:func:`describe_non_audio` in words only, for bytes a server sent: its content
    (text, first bytes) must not reach an error a tenant reads."""
    known = identify_non_audio(head)
    if known is None:
        return "unrecognised binary data"
    return "plain text" if known.startswith("text (") else known


def identify_non_audio(head: bytes) -> str | None:
    """Describe ``head`` if it is a well-known non-audio format; ``None`` when unknown.

    Unknown binary data may still be audio in a format :func:`sniff_audio` does not
    know, so callers can give it the benefit of the doubt.
    """
    if not head:
        return "an empty file"
    for magic, description in _BINARY_SIGNATURES:
        if head.startswith(magic):
            return description
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "a WebP image"
    text = _as_text(head)
    if text is None:
        return None
    stripped = text.lstrip()
    if not stripped:
        return "whitespace only"
    lowered = stripped[:1024].lower()
    if lowered.startswith(("<!doctype html", "<html")) or any(
        tag in lowered for tag in ("<html", "<head>", "<body")
    ):
        return "an HTML page"
    if lowered.startswith("<"):
        if "<rss" in lowered or "<feed" in lowered:
            return "an RSS/Atom feed (XML)"
        return "XML"
    if stripped[0] in "{[" and _plausible_json(stripped):
        return "a JSON document"
    excerpt = " ".join(stripped.split())[:60]
    return f"text ({json.dumps(excerpt, ensure_ascii=False)})"


_BINARY_SIGNATURES = (
    (b"%PDF", "a PDF"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"PK\x05\x06", "a ZIP archive"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
)


def _as_text(head: bytes) -> str | None:
    head = head.removeprefix(b"\xef\xbb\xbf")
    # The head may end in the middle of a multi-byte character.
    for cut in range(4):
        try:
            text = head[: len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
        return text if printable >= 0.95 * len(text) else None
    return None


def _plausible_json(text: str) -> bool:
    """Whether text starting with ``{`` or ``[`` goes on like JSON (a head is often cut
    short, so it cannot simply be parsed)."""
    rest = text[1:].lstrip()
    if not rest:
        return True
    return rest[0] in ('"}' if text[0] == "{" else '"{[]-0123456789tfn')


def probe_duration(path: Path) -> float:
    """Seconds of audio in ``path``, read with PyAV (the ``ml`` extra).

    The demuxer reads every packet (without decoding) so the answer reflects the bytes
    that are really there, and the first packets are decoded to prove the codec works.
    The container's declared duration is returned when the packets agree with it; a
    file holding less than half of what its header declares is truncated and rejected.

    Raises :class:`AudioError` when the file cannot be opened, has no audio stream,
    yields no audio frames or is truncated; :class:`MissingExtraError` without PyAV.
    """
    try:
        import av
    except ImportError as exc:
        raise MissingExtraError("ml", "probing audio", "av") from exc

    def fail(cause: object) -> AudioError:
        return AudioError(f"cannot decode {path.name}: {cause}; the file is damaged or not audio")

    if not path.is_file():
        raise AudioError(f"audio file not found: {path}")
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise fail(exc.strerror or exc) from exc
    with container:
        if not container.streams.audio:
            raise fail("it has no audio stream")
        stream = container.streams.audio[0]
        declared = _declared_seconds(container, stream)
        counted, decoded_any, decode_error = _count_seconds(container, stream, av.FFmpegError)
        if not decoded_any:
            cause = decode_error.strerror if decode_error else None
            raise fail(cause or "it yields no audio frames")
        if declared is None or not _declared_is_exact(container.format.name, path):
            return counted
        if counted < 0.5 * declared:
            raise fail(
                f"it is truncated (its header declares {declared:.1f} s but only "
                f"{counted:.2f} s of audio is present)"
            )
        if abs(counted - declared) <= max(1.0, 0.02 * declared):
            return declared
        # Stitched files (dynamic ad insertion) can disagree with a stale header; the
        # packets are what will be transcribed.
        log.warning(
            "%s: header declares %.1f s but the packets hold %.1f s; using %.1f s",
            path.name,
            declared,
            counted,
            counted,
        )
        return counted


def _declared_seconds(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def _count_seconds(container, stream, decode_errors: type[Exception]):
    """(seconds summed over packets, whether any packet decoded to audio samples, the
    last decoding error seen before one did)."""
    codec = stream.codec_context
    rate = codec.sample_rate or 1
    seconds = 0.0
    decoded_any = False
    last_error = None
    try:
        for packet in container.demux(stream):
            if packet.size == 0:  # the flush packet at the end
                continue
            has_duration = bool(packet.duration) and packet.time_base is not None
            samples = 0
            # Decode until the codec proves itself, and wherever packets carry no duration.
            if not decoded_any or not has_duration:
                try:
                    samples = sum(frame.samples for frame in codec.decode(packet))
                except decode_errors as exc:
                    last_error = exc
                decoded_any = decoded_any or samples > 0
            if has_duration:
                seconds += float(packet.duration * packet.time_base)
            else:
                seconds += samples / rate
    except decode_errors as exc:  # demuxing stops at damage; keep what came before it
        last_error = exc
    return seconds, decoded_any, last_error


def _declared_is_exact(format_name: str, path: Path) -> bool:
    """False when FFmpeg guessed the duration from a bitrate (MPEG and ADTS without a
    frame-count header), which can be off by a factor of several for VBR files."""
    if format_name == "aac":
        return False
    if format_name != "mp3":
        return True
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
        offset = _id3_size(head) or 0
        if offset + 200 > len(head):
            handle.seek(offset)
            head = handle.read(SNIFF_BYTES)
            offset = 0
    while offset < len(head) and head[offset] == 0:
        offset += 1
    first_frame = head[offset : offset + 200]
    return any(tag in first_frame for tag in (b"Xing", b"Info", b"VBRI"))
