"""The FERPlus label space: one source of truth for class names and vote columns."""

CLASS_NAMES: tuple[str, ...] = (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
)
# The ten vote columns of FERPlus label.csv / fer2013new.csv, in file order.
VOTE_COLUMNS: tuple[str, ...] = CLASS_NAMES + ("unknown", "NF")
NUM_CLASSES = len(CLASS_NAMES)
NUM_VOTES = len(VOTE_COLUMNS)
IMAGE_SIDE = 48          # FER2013 faces are 48x48 grayscale
SPLITS: tuple[str, ...] = ("train", "valid", "test")
# FERPlus reference folder of each split.
SPLIT_FOLDERS = {"train": "FER2013Train", "valid": "FER2013Valid", "test": "FER2013Test"}
# Kaggle fer2013.csv Usage value of each split.
SPLIT_USAGE = {"train": "Training", "valid": "PublicTest", "test": "PrivateTest"}
