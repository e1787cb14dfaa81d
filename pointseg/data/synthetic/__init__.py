"""Synthetic datasets: S3DIS rooms in the raw Stanford layout and ModelNet-style meshes.

These are the embedded default data of the demo and of the tests: nothing is downloaded, every
file is a pure function of the seed (same seed → byte-identical files).

S3DIS (`synth_s3dis`)
    ``<out>/Area_<a>/<room>/Annotations/<class>_<i>.txt`` (one ``x y z r g b`` line per point,
    coordinates with 3 decimals in metres, integer colours 0..255, exactly the text format of
    ``Stanford3dDataset_v1.2_Aligned_Version``) and ``<out>/Area_<a>/<room>/<room>.txt``, the
    concatenation of the room's annotation files in natural name order (``beam_1``, ``board_1``,
    …, ``chair_2``, ``chair_10``, …: the order `pointseg.data.s3dis.parse_room` reads them in). Rooms are axis-aligned boxes of the room types of the real dataset
    (``office``, ``conferenceRoom``, ``hallway``, ``lounge``, ``copyRoom``, ``storage``), placed
    side by side in an area-wide coordinate frame (so coordinates are not room-relative, as in the
    real data). Points are sampled **on surfaces** (area-weighted, ``BASE_DENSITY × density``
    points per m²) with a few mm of Gaussian sensor jitter; hidden structural surfaces (the wall
    behind a board, bookcase or column, the floor under a sofa, the ceiling above a beam, the
    wall inside door and window openings) are carved away as a scanner would not see them.

    Every room contains all 13 classes, so every area does. The classes are separable by
    geometry + colour, but not by colour alone: beams and columns have the colour of the ceiling
    and walls (height, thickness and position tell them apart), boards are thin light panels 1–3
    cm in front of the wall, doors and windows sit in wall openings (recessed, with frames),
    tables and chairs differ by height and shape, clutter has random colours.

ModelNet (`synth_modelnet`)
    ``<out>/<class>/{train,test}/<class>_<0001>.off`` triangle meshes (``OFF\\n<nv> <nf> 0``)
    of primitive-composed shapes (table = top + 4 legs, chair = seat + back + legs, lamp =
    base + pole + cone shade, …) with random proportions, scale and rotation about z.

Package layout (one idea per module): `catalog` (room types, the room's objects), `sampling`
(surface sampling, colours), `builder` (:class:`RoomBuilder`: the room's state and placement),
`structure`, `furniture` and `clutter` (the elements of a room), `room` (`make_room`: the build
order), `writer` (file formats, atomic threaded writes), `areas` (`synth_s3dis`) and `meshes`
(`synth_modelnet`).
"""

from __future__ import annotations

from pointseg.data.s3dis.classes import CLASSES
from pointseg.data.synthetic.areas import room_plan, synth_s3dis
from pointseg.data.synthetic.catalog import (
    BASE_DENSITY,
    JITTER,
    ROOM_TYPES,
    RoomType,
    SynthObject,
    SynthRoom,
)
from pointseg.data.synthetic.meshes import (
    MODELNET_SYNTH_CLASSES,
    make_mesh,
    mesh_to_off,
    synth_modelnet,
)
from pointseg.data.synthetic.room import make_room
from pointseg.data.synthetic.writer import annotation_order, format_points, write_room

__all__ = [
    "BASE_DENSITY",
    "CLASSES",
    "MODELNET_SYNTH_CLASSES",
    "JITTER",
    "ROOM_TYPES",
    "RoomType",
    "SynthObject",
    "SynthRoom",
    "annotation_order",
    "format_points",
    "make_room",
    "room_plan",
    "mesh_to_off",
    "make_mesh",
    "synth_modelnet",
    "synth_s3dis",
    "write_room",
]
