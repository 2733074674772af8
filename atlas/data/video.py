"""Frames of mp4 videos by timestamp (PyAV: AV1, h264, hevc; its wheels carry their own FFmpeg).

`VideoFile` indexes a file once (packet timestamps and keyframes, by demuxing without decoding), then
answers "the frames at these timestamps" by seeking to the keyframe at or before the earliest one and
decoding forward once to the latest: a window of consecutive frames costs one seek and one pass, not one
per frame. When the next request starts after the last decoded frame with no keyframe between that
would be closer, decoding simply continues (sequential reads never seek). A timestamp matches the frame
whose presentation time is within `tolerance` seconds (LeRobot's default is 1e-4 s).

`VideoPool` keeps one `VideoFile` per path per process, reopened after a fork and dropped on pickling,
so a dataset built in the main process works inside DataLoader workers.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from fractions import Fraction

import numpy as np

from atlas.data.errors import DataError

DEFAULT_TOLERANCE_S = 1e-4
MAX_OPEN_VIDEOS = 32
# decoders a forked process inherited from its parent: never freed there (freeing FFmpeg state copied mid-use
# from another process can block forever on a lock its owner thread holds in the parent); forked DataLoader
# workers leave through os._exit, so nothing is finalized
_INHERITED: list = []
RECENT_FRAMES = 32  # decoded frames kept per file: overlapping windows (history, sliding reads) reuse them


def import_av():
    """PyAV, or a DataError naming the extra that installs it."""
    try:
        import av
    except ImportError:
        raise DataError("reading or writing LeRobot videos needs PyAV: pip install 'atlas[lerobot]'") from None
    return av


class VideoFile:
    """One mp4 file: a frame index built on first use and a decoder kept open between reads."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._container = None
        self._stream = None
        self._pts: np.ndarray | None = None  # presentation times in stream units, sorted
        self._seconds: np.ndarray | None = None
        self._keyframe: np.ndarray | None = None  # bool per sorted frame
        self._decoder = None  # iterator of decoded frames after the last seek
        self._position = -1  # sorted index of the last frame the decoder returned
        self._recent: OrderedDict[int, np.ndarray] = OrderedDict()

    # -- opening and indexing -------------------------------------------------------------------
    def _open(self) -> None:
        av = import_av()
        if not os.path.isfile(self.path):
            raise DataError(f"{self.path}: video file missing")
        try:
            container = av.open(self.path)
            if not container.streams.video:
                raise DataError(f"{self.path}: no video stream in the file")
            stream = container.streams.video[0]
            # one decoding thread: a decoder with FFmpeg worker threads that a forked DataLoader worker inherits
            # hangs when freed there (its threads do not exist in the child); workers give the parallelism
            stream.codec_context.thread_count = 1
            packets = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.pts is not None]
        except DataError:
            raise
        except (av.error.FFmpegError, OSError, ValueError) as err:
            raise DataError(f"{self.path}: cannot read the video (truncated or not an mp4?): {err}") from None
        if not packets:
            raise DataError(f"{self.path}: the video holds no frames (truncated?)")
        declared = int(stream.frames or 0)
        if declared and len(packets) < declared:
            raise DataError(f"{self.path}: truncated video: {len(packets)} of its {declared} frames are in the file")
        packets.sort()
        self._pts = np.array([p for p, _ in packets], dtype=np.int64)
        self._keyframe = np.array([k for _, k in packets], dtype=bool)
        self._keyframe[0] = True  # decoding can always start at the first frame
        base = Fraction(stream.time_base)
        self._seconds = self._pts.astype(np.float64) * float(base)
        self._time_base = base
        self._container, self._stream = container, stream
        self._decoder, self._position = None, -1

    def frame_times(self) -> np.ndarray:
        """Presentation time of every frame in seconds, in display order."""
        if self._container is None:
            self._open()
        return self._seconds

    def frame_indices(self, timestamps: np.ndarray, tolerance: float = DEFAULT_TOLERANCE_S) -> np.ndarray:
        """Index (display order) of the frame at each timestamp; a DataError for one with no frame."""
        seconds = self.frame_times()
        timestamps = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        right = np.clip(np.searchsorted(seconds, timestamps), 0, len(seconds) - 1)
        left = np.clip(right - 1, 0, len(seconds) - 1)
        nearest = np.where(np.abs(seconds[left] - timestamps) <= np.abs(seconds[right] - timestamps), left, right)
        off = np.abs(seconds[nearest] - timestamps) > tolerance
        if off.any():
            bad = int(np.argmax(off))
            raise DataError(
                f"{self.path}: no frame at timestamp {timestamps[bad]:.6f} s (nearest frame at "
                f"{seconds[nearest[bad]]:.6f} s, tolerance {tolerance:g} s; the video has {len(seconds)} frames "
                f"from {seconds[0]:.3f} to {seconds[-1]:.3f} s)"
            )
        return nearest

    # -- decoding -------------------------------------------------------------------------------
    def frames(self, timestamps: np.ndarray, tolerance: float = DEFAULT_TOLERANCE_S) -> np.ndarray:
        """uint8 [n, H, W, 3] RGB frames at the given timestamps (any order, repeats allowed)."""
        indices = self.frame_indices(timestamps, tolerance)
        wanted = set(np.unique(indices).tolist())
        found = {i: self._recent[i] for i in wanted if i in self._recent}
        missing = sorted(wanted - set(found))
        if missing:
            found.update(self._decode_range(missing[0], missing[-1], set(missing)))
        for index in sorted(found):
            self._recent[index] = found[index]
            self._recent.move_to_end(index)
        while len(self._recent) > RECENT_FRAMES:
            self._recent.popitem(last=False)
        return np.stack([found[int(i)] for i in indices])

    def _decode_range(self, first: int, last: int, wanted: set[int]) -> dict[int, np.ndarray]:
        """Decode forward from the keyframe at or before `first` (or on from the decoder's position)."""
        av = import_av()
        keyframe = int(np.flatnonzero(self._keyframe[: first + 1])[-1])
        if self._decoder is None or not (keyframe <= self._position + 1 <= first):
            self._seek(keyframe)
        out: dict[int, np.ndarray] = {}
        try:
            while self._position < last:
                frame = self._next_frame()
                if frame is None:
                    break
                index = int(np.searchsorted(self._pts, frame.pts))
                if index >= len(self._pts) or self._pts[index] != frame.pts:
                    continue  # a frame the index does not know (should not happen)
                self._position = index
                if index in wanted:
                    out[index] = frame.to_ndarray(format="rgb24")
        except (av.error.FFmpegError, OSError, ValueError) as err:
            self._decoder = None
            raise DataError(f"{self.path}: decoding failed near {self._seconds[first]:.3f} s (truncated?): {err}") from None
        missing = sorted(wanted - set(out))
        if missing:
            self._decoder = None
            raise DataError(
                f"{self.path}: frame at {self._seconds[missing[0]]:.6f} s is listed but could not be decoded "
                "(truncated or corrupted video)"
            )
        return out

    def _seek(self, keyframe: int) -> None:
        self._container.seek(int(self._pts[keyframe]), stream=self._stream, backward=True, any_frame=False)
        self._decoder = self._container.decode(self._stream)
        self._position = keyframe - 1

    def _next_frame(self):
        try:
            return next(self._decoder)
        except StopIteration:
            self._decoder = None
            return None

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = self._stream = self._decoder = None


class VideoPool:
    """One open `VideoFile` per path in this process (least recently used closed past MAX_OPEN_VIDEOS)."""

    def __init__(self) -> None:
        self._files: OrderedDict[str, VideoFile] = OrderedDict()
        self._pid = os.getpid()

    def get(self, path: str) -> VideoFile:
        if os.getpid() != self._pid:  # forked: the parent's decoders are not ours to use, nor to free
            _INHERITED.append(self._files)
            self._files = OrderedDict()
            self._pid = os.getpid()
        video = self._files.get(path)
        if video is None:
            video = self._files[path] = VideoFile(path)
            while len(self._files) > MAX_OPEN_VIDEOS:
                self._files.popitem(last=False)[1].close()
        else:
            self._files.move_to_end(path)
        return video

    def __getstate__(self) -> dict:
        return {"_files": OrderedDict(), "_pid": None}

    def __setstate__(self, state: dict) -> None:
        self._files = OrderedDict()
        self._pid = os.getpid()


class VideoWriter:
    """An mp4 written frame batch by frame batch: frame k (counted over every `write`) is at k / fps seconds,
    so several episodes can share one file (LeRobot v3.0) with from_timestamp = first frame / fps.

    libsvtav1/libx264/libx265 encode yuv420p (what LeRobot writes); libx264rgb with crf 0 is lossless."""

    def __init__(self, path: str, fps: int, codec: str = "libsvtav1", options: dict | None = None) -> None:
        self.path, self.fps, self.codec = path, int(fps), codec
        self.options = dict(options if options is not None else default_codec_options(codec))
        self.frames_written = 0
        self.shape: tuple[int, int] | None = None
        self._container = self._stream = None

    def _start(self, height: int, width: int) -> None:
        av = import_av()
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole config to stderr otherwise
        try:
            self._container = av.open(self.path, "w", format="mp4")
            stream = self._container.add_stream(self.codec, rate=self.fps)
        except (av.error.FFmpegError, ValueError) as err:
            raise DataError(f"{self.path}: cannot encode with {self.codec}: {err}") from None
        stream.width, stream.height = width, height
        stream.pix_fmt = "rgb24" if self.codec == "libx264rgb" else "yuv420p"
        stream.time_base = Fraction(1, self.fps)
        stream.options = self.options
        self._stream, self.shape = stream, (height, width)

    def write(self, frames: np.ndarray) -> None:
        """Append uint8 [T, H, W, 3] RGB frames (every call the same H x W)."""
        av = import_av()
        frames = np.asarray(frames, dtype=np.uint8)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise DataError(f"{self.path}: frames of shape {tuple(frames.shape)}, expected [T, H, W, 3] uint8")
        if self._container is None:
            self._start(int(frames.shape[1]), int(frames.shape[2]))
        if tuple(frames.shape[1:3]) != self.shape:
            raise DataError(f"{self.path}: frames of {frames.shape[1]}x{frames.shape[2]}, the video is "
                            f"{self.shape[0]}x{self.shape[1]}")
        for image in frames:
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = self.frames_written
            frame.time_base = Fraction(1, self.fps)  # not the stream's: the muxer changes that once it starts
            self._container.mux(self._stream.encode(frame))
            self.frames_written += 1

    def close(self) -> None:
        if self._container is not None:
            self._container.mux(self._stream.encode())
            self._container.close()
            self._container = None


def encode_video(path: str, frames: np.ndarray, fps: int, codec: str = "libsvtav1") -> None:
    """Write one clip of uint8 [T, H, W, 3] frames as an mp4."""
    writer = VideoWriter(path, fps, codec)
    writer.write(frames)
    writer.close()


def default_codec_options(codec: str) -> dict[str, str]:
    """Encoder settings: LeRobot's (keyframe every 2 frames, crf 30) for lossy codecs, crf 0 for libx264rgb."""
    if codec == "libx264rgb":
        return {"crf": "0", "g": "2"}
    if codec == "libsvtav1":
        return {"crf": "30", "g": "2", "preset": "12"}
    if codec == "libx265":
        return {"crf": "30", "g": "2", "x265-params": "log-level=error"}
    return {"crf": "30", "g": "2"}
