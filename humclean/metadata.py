"""Tag carry-over from a source file to its cleaned output (basic level).

* Same container on both sides (FLAC, Ogg Vorbis/Opus, MP3, MP4/M4A, AIFF, WAV-with-ID3): the
  destination's tags are replaced by an exact copy of the source's (Vorbis comments in order,
  FLAC pictures, ID3 frames, MP4 atoms incl. cover art).
* Different containers (e.g. MP3 -> FLAC with ``format_override``): the common "easy" keys
  (title, artist, album, date, ...) and front-cover pictures where both sides can hold them.
* AIFF (and WAV written as another container) LIST/INFO strings travel through libsndfile's string
  API (:func:`read_sndfile_strings`, applied by ``AtomicWriter`` while the file is being written).
* WAV/BWF/RF64 to WAV-family outputs: every non-audio chunk is copied byte for byte by
  :mod:`humclean.riff` instead (libsndfile drops unknown chunks, mutagen only knows ID3 in WAV).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import soundfile as sf

from humclean.errors import EncodeError

__all__ = ["SNDFILE_STRINGS", "copy_tags", "read_sndfile_strings"]

SNDFILE_STRINGS = (
    "title",
    "copyright",
    "software",
    "artist",
    "comment",
    "date",
    "album",
    "license",
    "tracknumber",
    "genre",
)


def read_sndfile_strings(path: Path) -> dict[str, str]:
    """libsndfile's string metadata (WAV LIST/INFO, AIFF, ...) of ``path``; {} when unreadable."""
    out: dict[str, str] = {}
    try:
        with sf.SoundFile(str(path)) as f:
            for key in SNDFILE_STRINGS:
                with contextlib.suppress(Exception):
                    value = getattr(f, key)
                    if value:
                        out[key] = value
    except Exception:
        return {}
    return out


def _open(path: Path) -> Any:
    import mutagen

    try:
        return mutagen.File(str(path))
    except mutagen.MutagenError:
        return None


def copy_tags(src: Path, dst: Path) -> list[str]:
    """Copy tags from ``src`` into ``dst`` in place; return names of what was copied.

    Returns ``[]`` when ``src`` has no tags or mutagen does not know either container. Raises
    :class:`EncodeError` when tags exist but cannot be written to ``dst``.
    """
    import mutagen

    s = _open(Path(src))
    if s is None or not s.tags and not getattr(s, "pictures", None):
        return []
    d = _open(Path(dst))
    if d is None:
        # mutagen guesses partly from the file name; a temp name has no extension, and an MP3
        # without an ID3 tag then scores zero. The writer made dst like src, so try src's type.
        try:
            d = type(s)(str(dst))
        except (mutagen.MutagenError, OSError, ValueError):
            return []
    try:
        if type(s) is type(d):
            copied = _copy_same(s, d)
        else:
            copied = _copy_easy(Path(src), Path(dst), s, d)
    except (mutagen.MutagenError, OSError, ValueError, TypeError, KeyError) as exc:
        raise EncodeError(f"copying tags failed: {exc}") from None
    return copied


_FLAC_CARRIED_BLOCKS = (2, 5)


def _has_id3v1(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(-128, 2)
            return f.read(3) == b"TAG"
    except OSError:
        return False


def _copy_same(s: Any, d: Any) -> list[str]:
    from mutagen.flac import FLAC
    from mutagen.id3 import ID3
    from mutagen.mp4 import MP4
    from mutagen.ogg import OggFileType

    copied: list[str] = []
    if isinstance(s, (FLAC, OggFileType)):
        if s.tags is not None:
            if d.tags is None:
                d.add_tags()
            d.tags.clear()
            for key, value in s.tags:
                d.tags.append((key, value))
            copied += sorted({k.lower() for k, _ in s.tags})
        if isinstance(s, FLAC):
            d.clear_pictures()
            for pic in s.pictures:
                d.add_picture(pic)
            copied += ["picture"] * len(s.pictures)
            # APPLICATION (2) and CUESHEET (5) blocks describe the recording, not the encoding:
            # carried over byte for byte (STREAMINFO, SEEKTABLE, PADDING belong to the new file)
            carried = [b for b in s.metadata_blocks if b.code in _FLAC_CARRIED_BLOCKS]
            d.metadata_blocks = [b for b in d.metadata_blocks if b.code not in _FLAC_CARRIED_BLOCKS] + carried
            copied += [{2: "application", 5: "cuesheet"}[b.code] for b in carried]
        d.save()
        return copied
    if isinstance(s, MP4):
        if d.tags is None:
            d.add_tags()
        d.tags.clear()
        for key, value in s.tags.items():
            d.tags[key] = value
            copied.append(key)
        d.save()
        return copied
    if isinstance(s.tags, ID3):
        if d.tags is None:
            d.add_tags()
        d.tags.clear()
        for frame in s.tags.values():
            d.tags.add(frame)
            copied.append(frame.HashKey)
        version = s.tags.version[1] if s.tags.version[1] in (3, 4) else 4
        # an ID3v1 tag at the end of the source is written again (mutagen only updates existing ones)
        v1 = 2 if _has_id3v1(Path(s.filename)) else 0
        d.save(v2_version=version, v1=v1)
        if v1:
            copied.append("ID3v1")
        return copied
    # any other mutagen type with a dict-like tag container
    if d.tags is None:
        d.add_tags()
    for key, value in s.tags.items():
        d.tags[key] = value
        copied.append(str(key))
    d.save()
    return copied


def _copy_easy(src: Path, dst: Path, s: Any, d: Any) -> list[str]:
    import mutagen
    from mutagen.flac import FLAC, Picture

    se = mutagen.File(str(src), easy=True)
    de = mutagen.File(str(dst), easy=True)
    copied: list[str] = []
    if se is not None and de is not None and se.tags:
        if de.tags is None:
            de.add_tags()
        for key, value in _easy_items(se.tags):
            with contextlib.suppress(KeyError, ValueError, TypeError):
                de.tags[key] = value
                copied.append(key)
        de.save()
    if isinstance(d, FLAC):
        d = FLAC(str(dst))
        for data, mime, ptype, desc in _pictures(s):
            pic = Picture()
            pic.data, pic.mime, pic.type, pic.desc = data, mime, ptype, desc
            d.add_picture(pic)
            copied.append("picture")
        d.save()
    return copied


# ID3 frames that mutagen's "easy" interface cannot give for every container (WAV/AIFF hold raw ID3)
_ID3_EASY = {
    "TIT2": "title", "TPE1": "artist", "TALB": "album", "TPE2": "albumartist", "TDRC": "date",
    "TCON": "genre", "TRCK": "tracknumber", "TPOS": "discnumber", "TCOM": "composer", "TCOP": "copyright",
    "TSRC": "isrc", "TIT3": "version", "TENC": "encodedby", "TLAN": "language",
}  # fmt: skip


def _easy_items(tags: Any) -> list[tuple[str, list[str]]]:
    """(easy key, list of strings) for every tag; raw ID3 frames (WAV/AIFF) are mapped by frame id."""
    from mutagen.id3 import ID3

    if isinstance(tags, ID3):
        out = []
        for frame_id, key in _ID3_EASY.items():
            frame = tags.get(frame_id)
            if frame is not None:
                out.append((key, [str(t) for t in frame.text]))
        return out
    return [(k, v) for k, v in tags.items() if isinstance(v, list) and all(isinstance(x, str) for x in v)]


def _pictures(s: Any) -> list[tuple[bytes, str, int, str]]:
    """(data, mime, type, description) of every picture mutagen finds in ``s``."""
    from mutagen.id3 import ID3
    from mutagen.mp4 import MP4, MP4Cover

    out: list[tuple[bytes, str, int, str]] = []
    if isinstance(s.tags, ID3):
        for apic in s.tags.getall("APIC"):
            out.append((apic.data, apic.mime, int(apic.type), apic.desc))
    elif isinstance(s, MP4) and s.tags is not None:
        for cover in s.tags.get("covr", []):
            mime = "image/png" if cover.imageformat == MP4Cover.FORMAT_PNG else "image/jpeg"
            out.append((bytes(cover), mime, 3, ""))
    return out
