"""The structure of a synthetic room: floor, ceiling, walls, doors, windows, columns, beams, boards.

Every element is a function of a :class:`RoomBuilder`; wall-bound ones reserve their wall span
and record the wall (or ceiling) surface they hide as a carve.
"""

from __future__ import annotations

import numpy as np

from pointseg.data.synthetic.builder import Carve, RoomBuilder
from pointseg.data.synthetic.catalog import SynthObject
from pointseg.data.synthetic.sampling import (
    BOARD_COLORS,
    METAL_COLORS,
    WINDOW_FRAMES,
    WINDOW_GLASS,
    WOOD_COLORS,
    object_color,
    paint,
    rand_hue_color,
)


def add_structure(room: RoomBuilder) -> None:
    s, L, W, H = room.s, room.L, room.W, room.H
    room.add("floor", [(s.rect([0, 0, 0], [L, 0, 0], [0, W, 0]), room.floor_color, 12.0)])
    room.add("ceiling", [(s.rect([0, 0, H], [L, 0, 0], [0, W, 0]), room.ceiling_color, 7.0)])
    # Walls are annotated one file per wall, as in the real data.
    for wall in room.walls:
        pts = s.rect(wall.origin, wall.u * wall.length, [0, 0, H])
        shade = room.wall_color * room.rng.uniform(0.94, 1.04)
        room.add("wall", [(pts, shade, 7.0)])


def add_doors(room: RoomBuilder) -> None:
    rng, s = room.rng, room.s
    n = room.count(room.t.doors)
    for i in range(n):
        double = rng.random() < (0.25 if room.t.center_table == "conference" else 0.1)
        width = float(rng.uniform(1.5, 1.8) if double else rng.uniform(0.85, 1.0))
        h = float(rng.uniform(2.0, 2.2))
        fw = float(rng.uniform(0.04, 0.08))
        slot = room.wall_slot(width + 2 * fw, 0.0, h + fw, 1.0, margin=0.15)
        if slot is None:
            if i == 0:  # every room needs a door: accept a narrow one anywhere on the walls
                slot = (int(rng.integers(4)), 0.15, width + 2 * fw)
            else:
                continue
        w, s0f, full = slot
        width = full - 2 * fw
        s0, s1 = s0f + fw, s0f + fw + width
        room.reserve_wall(w, s0f, s0f + full, 0.0, h + fw, 1.0)
        wall = room.walls[w]
        rec = float(rng.uniform(0.03, 0.08))  # the leaf sits inside the wall thickness
        fr = 0.015  # frame front protrudes into the room
        leaf = s.rect([s0, -rec, 0], [width, 0, 0], [0, 0, h])
        frame = np.concatenate(
            [
                s.rect([s0 - fw, fr, 0], [fw, 0, 0], [0, 0, h + fw]),
                s.rect([s1, fr, 0], [fw, 0, 0], [0, 0, h + fw]),
                s.rect([s0, fr, h], [width, 0, 0], [0, 0, fw]),
                # reveals: the frame's inner faces between the leaf and the frame front
                s.rect([s0, -rec, 0], [0, rec + fr, 0], [0, 0, h]),
                s.rect([s1, -rec, 0], [0, rec + fr, 0], [0, 0, h]),
                s.rect([s0, -rec, h], [width, 0, 0], [0, rec + fr, 0]),
            ]
        )
        hs = s1 - 0.1 if rng.random() < 0.5 else s0 + 0.02
        handle = s.box([hs, -rec, 0.98], [hs + 0.08, -rec + 0.06, 1.02])
        kind = rng.random()
        if kind < 0.5:
            leaf_c = object_color(rng, WOOD_COLORS)
        elif kind < 0.8:
            leaf_c = object_color(rng, ((120, 122, 126), (95, 100, 108)))
        else:  # painted like the wall: only the geometry (recess, frame) tells it apart
            leaf_c = room.wall_color * rng.uniform(0.85, 0.95)
        frame_c = (
            leaf_c * rng.uniform(0.8, 1.0)
            if rng.random() < 0.5
            else object_color(rng, METAL_COLORS)
        )
        room.add(
            "door",
            [
                (wall.to_world(leaf), leaf_c, 10.0),
                (wall.to_world(frame), frame_c, 8.0),
                (wall.to_world(handle), (175, 175, 180), 8.0),
            ],
        )
        room.carves.append(
            Carve(*wall.box_world([s0 - fw, -0.3, -0.05], [s1 + fw, 0.3, h + fw]), ("wall",))
        )


def add_windows(room: RoomBuilder) -> None:
    rng, s = room.rng, room.s
    n = room.count(room.t.windows)
    for i in range(n):
        width = float(rng.uniform(0.8, 2.4))
        sill = float(rng.uniform(0.75, 1.0))
        top = float(min(2.3, room.H - 0.5) - rng.uniform(0.0, 0.15))
        fw = float(rng.uniform(0.04, 0.07))
        slot = room.wall_slot(width + 2 * fw, sill - fw - 0.05, top + fw, 0.0, margin=0.2)
        if slot is None:
            if i == 0:
                slot = (int(rng.integers(4)), 0.2, 0.8 + 2 * fw)
            else:
                continue
        w, s0f, full = slot
        width = full - 2 * fw
        s0, s1 = s0f + fw, s0f + full - fw
        h = top - sill
        room.reserve_wall(w, s0f, s0f + full, sill - fw - 0.05, top + fw, 0.0)
        room.windows.append((w, s0f, s0f + full, sill))
        wall = room.walls[w]
        rec = float(rng.uniform(0.08, 0.2))  # glass plane behind the wall plane
        glass = s.rect([s0, -rec, sill], [width, 0, 0], [0, 0, h])
        # Scanners see through glass: most glass returns are missing.
        glass = glass[rng.random(len(glass)) < rng.uniform(0.3, 0.7)]
        fr = 0.01
        parts = [
            s.rect([s0 - fw, fr, sill - fw], [fw, 0, 0], [0, 0, h + 2 * fw]),
            s.rect([s1, fr, sill - fw], [fw, 0, 0], [0, 0, h + 2 * fw]),
            s.rect([s0, fr, top], [width, 0, 0], [0, 0, fw]),
            s.rect([s0, -rec, sill], [0, rec + fr, 0], [0, 0, h]),  # side reveals
            s.rect([s1, -rec, sill], [0, rec + fr, 0], [0, 0, h]),
            s.rect([s0, -rec, top], [width, 0, 0], [0, rec + fr, 0]),
            # the sill board protrudes into the room
            s.box(
                [s0 - fw, -rec, sill - fw],
                [s1 + fw, float(rng.uniform(0.04, 0.1)), sill],
                skip="y0",
            ),
        ]
        # Vertical mullions every ~0.6-0.9 m.
        n_mull = int(width // rng.uniform(0.6, 0.9))
        for k in range(1, n_mull + 1):
            sm = s0 + k * width / (n_mull + 1)
            parts.append(
                s.box([sm - 0.025, -rec, sill], [sm + 0.025, -rec + 0.04, top], skip="y0z0z1")
            )
        frame = np.concatenate(parts)
        frame_c = object_color(rng, WINDOW_FRAMES)
        glass_c = np.asarray(WINDOW_GLASS) * rng.uniform(0.8, 1.15) + rng.normal(0, 10, 3)
        room.add(
            "window",
            [(wall.to_world(glass), glass_c, 28.0), (wall.to_world(frame), frame_c, 9.0)],
        )
        room.carves.append(
            Carve(
                *wall.box_world([s0 - fw, -0.3, sill - fw], [s1 + fw, 0.3, top + fw]),
                ("wall",),
            )
        )


def add_columns(room: RoomBuilder) -> None:
    rng, s, H = room.rng, room.s, room.H
    for _ in range(room.count(room.t.columns)):
        width = float(rng.uniform(0.3, 0.6))
        depth = float(rng.uniform(0.2, 0.5))
        slot = room.wall_slot(width, 0.0, H, depth, margin=0.3, corner_ok=True)
        if slot is None:
            slot = room.wall_slot(0.3, 0.0, H, 0.2, margin=0.0, tries=200)
            if slot is None:
                continue
        w, s0, width = slot
        s1 = s0 + width
        room.reserve_wall(w, s0, s1, 0.0, H, depth)
        wall = room.walls[w]
        parts = [s.rect([s0, depth, 0], [width, 0, 0], [0, 0, H])]  # front face
        if s0 > 1e-6:  # in a corner the side face would coincide with the adjacent wall
            parts.append(s.rect([s0, 0, 0], [0, depth, 0], [0, 0, H]))
        parts.append(s.rect([s1, 0, 0], [0, depth, 0], [0, 0, H]))
        color = room.wall_color * rng.uniform(0.93, 1.06)
        room.add("column", [(wall.to_world(np.concatenate(parts)), color, 7.0)])
        lo, hi = wall.box_world([s0 - 0.01, -0.05, -0.05], [s1, depth, H + 0.05])
        room.carves.append(Carve(lo, hi, ("ceiling", "floor", "wall", "beam")))


def add_beams(room: RoomBuilder) -> None:
    rng, s, L, W, H = room.rng, room.s, room.L, room.W, room.H
    for _ in range(room.count(room.t.beams)):
        bw = float(rng.uniform(0.2, 0.45))
        drop = float(rng.uniform(0.2, 0.45))
        z0 = H - drop
        along_y = rng.random() < 0.5 if L > W * 1.3 else rng.random() < 0.25
        # Beams span the room across; along y they sit at some x, and vice versa.
        if along_y:
            c = float(rng.uniform(0.6, L - 0.6))
            lo, hi = np.array([c - bw / 2, 0.0, z0]), np.array([c + bw / 2, W, H])
        else:
            c = float(rng.uniform(0.4, W - 0.4))
            lo, hi = np.array([0.0, c - bw / 2, z0]), np.array([L, c + bw / 2, H])
        pts = s.box(lo, hi, skip="x0x1z1" if not along_y else "y0y1z1")
        color = room.ceiling_color * rng.uniform(0.95, 1.2)
        room.add("beam", [(pts, color, 7.0)])
        pad = np.array([0.01, 0.01, 0.01])
        ext = np.array([0.05, 0.0, 0.0]) if not along_y else np.array([0.0, 0.05, 0.0])
        room.carves.append(Carve(lo - pad - ext, hi + pad + ext, ("ceiling", "wall")))


def add_boards(room: RoomBuilder) -> None:
    rng, s = room.rng, room.s
    n = room.count(room.t.boards)
    for i in range(n):
        width = float(rng.uniform(1.2, 3.0))
        h = float(rng.uniform(0.9, 1.25))
        bot = float(rng.uniform(0.9, 1.0))
        slot = room.wall_slot(width, bot, bot + h, 0.0, margin=0.2, shrink=0.5)
        if slot is None:
            if i > 0:
                continue
            slot = room.wall_slot(0.8, bot, bot + h, 0.0, margin=0.05, tries=300)
            if slot is None:  # walls full: hang it anyway, the wall behind is carved
                slot = (int(rng.integers(4)), 0.3, 0.8)
        w, s0, width = slot
        s1 = s0 + width
        room.reserve_wall(w, s0, s1, bot, bot + h, 0.0)
        wall = room.walls[w]
        th = float(rng.uniform(0.01, 0.03))
        face = s.rect([s0, th, bot], [width, 0, 0], [0, 0, h])
        fw = 0.02
        frame = np.concatenate(
            [
                s.box([s0 - fw, 0, bot - fw], [s0, th + 0.01, bot + h + fw], skip="y0"),
                s.box([s1, 0, bot - fw], [s1 + fw, th + 0.01, bot + h + fw], skip="y0"),
                s.box([s0, 0, bot + h], [s1, th + 0.01, bot + h + fw], skip="y0"),
                s.box([s0, 0, bot - fw], [s1, th + 0.06, bot], skip="y0"),  # marker tray
            ]
        )
        kind = rng.random()
        if kind < 0.75:  # whiteboard, a few darker strokes
            face_c = object_color(rng, BOARD_COLORS, 0.04)
        elif kind < 0.9:  # cork / bulletin board
            face_c = object_color(rng, ((172, 132, 92),), 0.06)
        else:  # chalkboard
            face_c = object_color(rng, ((48, 70, 58), (40, 40, 44)), 0.06)
        face_rgb = paint(rng, len(face), face_c, 6.0)
        ink = rng.random(len(face)) < 0.06
        face_rgb[ink] = paint(rng, int(ink.sum()), rand_hue_color(rng) * 0.6, 10.0)
        frame_rgb = paint(rng, len(frame), object_color(rng, METAL_COLORS[:1]), 8.0)
        room.objects.append(
            SynthObject(
                "board",
                np.concatenate([wall.to_world(face), wall.to_world(frame)]),
                np.concatenate([face_rgb, frame_rgb]),
            )
        )
        room.carves.append(
            Carve(
                *wall.box_world([s0 - fw, -0.05, bot - fw], [s1 + fw, th, bot + h + fw]),
                ("wall",),
            )
        )
