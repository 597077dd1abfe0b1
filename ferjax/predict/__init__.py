"""Emotions of the faces in photos, folders and videos: detection (`detect.py`), reading
inputs (`media.py`), the `Predictor` API (`predictor.py`) and the `ferjax predict` command
(`command.py`)."""
from ferjax.predict.command import run_predict
from ferjax.predict.media import InputError, read_image, video_frames
from ferjax.predict.predictor import Face, Predictor, bucket_size

__all__ = ["Face", "InputError", "Predictor", "bucket_size", "read_image", "run_predict", "video_frames"]
