"""Two procedural face styles (fixed look attributes, everything else varying) for the decoder swap."""


import numpy as np

from .base import DataSourceError, ImageData


class FaceStyleError(DataSourceError, ValueError):
    """An unknown face style or attribute, or a pair of one style twice."""


# Two procedural "face styles" for the decoder swap: fixed look attributes, everything else (expression, pose,
# face shape, eyes, and each identity's background, shirt and proportions) varies in both.
FACE_STYLES: dict[str, dict[str, float]] = {
    "a": {"glasses": 1.0, "beard": 1.0, "long_hair": 0.0, "hair_colour": 0.0, "skin_tone": 0.95},
    "b": {"glasses": 0.0, "beard": 0.0, "long_hair": 1.0, "hair_colour": 1.0, "skin_tone": 0.2},
}


def face_style_data(style: str | dict[str, float], count: int = 4000, *, seed: int = 0, size: int = 32,
                    identity_offset: int = 0, attrs: np.ndarray | None = None) -> ImageData:
    """Procedural faces in one style (a key of :data:`FACE_STYLES` or a dict of attribute values).

    ``identity_offset`` picks other people: style B's data set uses different identities from A's, as in the
    face-swap setting. ``attrs`` (N, 10) overrides the sampled attributes (their style columns are set), so a
    test can render the exact counterpart of a face in the other style: same person, pose and expression.
    """
    from .faces import ATTRIBUTE_NAMES, LABEL_NAMES, render_faces, sample_attributes

    values = FACE_STYLES[style] if isinstance(style, str) else dict(style)
    unknown = sorted(set(values) - set(ATTRIBUTE_NAMES))
    if unknown:
        raise FaceStyleError(f"unknown face attribute(s) {', '.join(unknown)}; known: {', '.join(ATTRIBUTE_NAMES)}")
    a = sample_attributes(count, seed + 1 + identity_offset) if attrs is None else np.array(attrs, np.float32)
    for name, v in values.items():
        a[:, ATTRIBUTE_NAMES.index(name)] = v
    identity = identity_offset + np.arange(len(a))
    n_train = len(a) - len(a) // 6
    return ImageData(
        name=f"faces-style-{style if isinstance(style, str) else 'custom'}",
        images=render_faces(a, seed, identity=identity, size=size),
        labels=a[:, ATTRIBUTE_NAMES.index("smiling")].astype(np.int64),
        label_names=list(LABEL_NAMES),
        n_train=n_train,
        attributes=a,
        attribute_names=list(ATTRIBUTE_NAMES),
        source=f"procedural faces, style {values}, seed {seed}, identities from {identity_offset}",
    )


FACE_STYLE_COUNT = 4000  # faces per style in a pair (and when a style is loaded by name)
FACE_STYLE_SIZE = 32


def face_style_dataset(style: str, count: int = FACE_STYLE_COUNT, *, size: int = FACE_STYLE_SIZE,
                       seed: int = 0) -> ImageData:
    """One style's faces as a swap pair uses them: ``count`` people, style A's numbered ``0..count-1`` and
    style B's ``count..2*count-1`` (other people, as in a face swap). ``load_dataset("faces-style-a")`` (and
    ``-b``) call this, so a pair's checkpoints name data sets that load again."""
    if style not in FACE_STYLES:
        raise FaceStyleError(f"unknown face style {style!r}; known: {', '.join(sorted(FACE_STYLES))}")
    first_person = sorted(FACE_STYLES).index(style) * count
    return face_style_data(style, count, seed=seed, size=size, identity_offset=first_person)


def face_style_pair(count: int = FACE_STYLE_COUNT, *, size: int = FACE_STYLE_SIZE, seed: int = 0,
                    styles: tuple[str, str] = ("a", "b")) -> tuple[ImageData, ImageData]:
    """The decoder swap's two data sets (:func:`face_style_dataset` of each style): different people."""
    if styles[0] == styles[1]:
        raise FaceStyleError(f"a swap pair needs two face styles, got {styles[0]!r} twice")
    return (face_style_dataset(styles[0], count, size=size, seed=seed),
            face_style_dataset(styles[1], count, size=size, seed=seed))
