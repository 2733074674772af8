"""JPEG encode/decode for images stored compressed (ALOHA/RDT files, `use_compression` preloading).

Pillow is the decoder (OpenCV when Pillow is missing); both are optional imports so that datasets of
raw uint8 arrays need neither.
"""

from __future__ import annotations

import io

import numpy as np

from atlas.data.errors import DataError


def _pil():
    try:
        from PIL import Image
    except ImportError:
        return None
    return Image


def _cv2():
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def as_bytes(value: object) -> bytes:
    """An HDF5 element holding an encoded image (bytes, np.bytes_, vlen uint8 array) → bytes."""
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value)
    if isinstance(value, np.ndarray) and value.dtype == np.uint8 and value.ndim == 1:
        return value.tobytes()
    if isinstance(value, np.void):
        return value.tobytes()
    raise DataError(f"cannot read an encoded image from a value of type {type(value).__name__}")


def decode_jpeg(data: bytes) -> np.ndarray:
    """Encoded image bytes → uint8 H×W×3 RGB."""
    pil = _pil()
    if pil is not None:
        try:
            with pil.open(io.BytesIO(data)) as image:
                return np.asarray(image.convert("RGB"))
        except (OSError, ValueError, SyntaxError) as err:  # PIL's UnidentifiedImageError is an OSError
            raise DataError(f"bytes {bytes(data[:8])!r}... are not an encoded image; expected JPEG or PNG ({type(err).__name__})") from None
    cv2 = _cv2()
    if cv2 is not None:
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DataError("an encoded image could not be decoded")
        return bgr[..., ::-1].copy()
    raise DataError("decoding JPEG images needs Pillow: pip install pillow (or opencv-python)")


def encode_jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    """uint8 H×W×3 RGB → JPEG bytes."""
    pil = _pil()
    if pil is not None:
        out = io.BytesIO()
        pil.fromarray(np.ascontiguousarray(image)).save(out, format="JPEG", quality=quality)
        return out.getvalue()
    cv2 = _cv2()
    if cv2 is not None:
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            return buf.tobytes()
    raise DataError("encoding JPEG images needs Pillow: pip install pillow (or opencv-python)")
