"""The furniture of a synthetic room: tables and their chairs, desks, sofas and bookcases.

Every element is a function of a :class:`RoomBuilder`. Objects in front of a wall take wall span
and a floor strip; free-standing ones take a floor footprint.
"""

from __future__ import annotations

import math

import numpy as np

from pointseg.data.synthetic.builder import Carve, RoomBuilder
from pointseg.data.synthetic.catalog import SynthObject
from pointseg.data.synthetic.sampling import (
    CHAIR_COLORS,
    METAL_COLORS,
    SOFA_COLORS,
    TABLE_COLORS,
    WOOD_COLORS,
    object_color,
    paint,
    rand_hue_color,
    rot_z,
)


def add_bookcases(room: RoomBuilder) -> None:
    rng, s = room.rng, room.s
    n = room.count(room.t.bookcases)
    for i in range(n):
        width = float(rng.uniform(0.8, 2.0))
        dep = float(rng.uniform(0.3, 0.4))
        h = float(rng.uniform(1.6, min(2.2, room.H - 0.4)))
        slot = room.wall_slot(width, 0.0, h, dep + 0.5, margin=0.05, corner_ok=True)
        if slot is None:
            if i > 0:
                continue
            slot = room.wall_slot(0.6, 0.0, h, dep, margin=0.0, tries=300)
            if slot is None:
                continue
        w, s0, width = slot
        s1 = s0 + width
        room.reserve_wall(w, s0, s1, 0.0, h, dep + 0.5)
        wall = room.walls[w]
        t = 0.02
        frame = [
            s.box([s0, 0, 0], [s0 + t, dep, h], skip="z0y0"),
            s.box([s1 - t, 0, 0], [s1, dep, h], skip="z0y0"),
            s.box([s0, 0, h - t], [s1, dep, h], skip="y0x0x1"),
            s.rect([s0, 0.01, 0], [width, 0, 0], [0, 0, h]),  # back panel
        ]
        n_sh = int(rng.integers(4, 7))
        levels = np.linspace(0.08, h - t, n_sh + 1)[:-1]
        books_xyz, books_rgb = [], []
        for z in levels:
            frame.append(s.box([s0, 0, z - t], [s1, dep, z], skip="y0x0x1"))
            space = float(levels[1] - levels[0]) - t - 0.02
            # Books: consecutive widths along the shelf, some gaps; sampled on the front faces.
            widths = rng.uniform(0.02, 0.07, size=int(width / 0.02) + 2)
            edges = s0 + np.concatenate([[0.0], np.cumsum(widths)])
            nb = int(np.searchsorted(edges, s1)) - 1
            present = rng.random(nb) < rng.uniform(0.35, 0.95)
            bh = rng.uniform(0.55, 0.95, nb) * space
            bd = rng.uniform(0.15, dep - 0.03, nb)
            base = np.stack([rand_hue_color(rng) for _ in range(nb)])
            pts = s.rect([s0, 0, z], [width, 0, 0], [0, 0, space])
            k = np.clip(np.searchsorted(edges, pts[:, 0], side="right") - 1, 0, nb - 1)
            keep = present[k] & (pts[:, 2] < z + bh[k])
            pts, k = pts[keep], k[keep]
            pts[:, 1] = bd[k]
            col = base[k] + rng.normal(0, 12, (len(k), 3))
            books_xyz.append(pts)
            books_rgb.append(np.clip(np.rint(col), 0, 255).astype(np.uint8))
        frame_pts = np.concatenate(frame)
        frame_rgb = paint(
            rng, len(frame_pts), object_color(rng, WOOD_COLORS + ((185, 184, 178),)), 8.0
        )
        room.objects.append(
            SynthObject(
                "bookcase",
                np.concatenate([wall.to_world(frame_pts), *[wall.to_world(b) for b in books_xyz]]),
                np.concatenate([frame_rgb, *books_rgb]),
            )
        )
        room.carves.append(Carve(*wall.box_world([s0 - 0.01, -0.05, -0.05], [s1 + 0.01, dep, h])))


def add_sofas(room: RoomBuilder) -> None:
    rng, s = room.rng, room.s
    n = room.count(room.t.sofas)
    for i in range(n):
        length = float(rng.uniform(1.4, 2.2))
        dep = float(rng.uniform(0.75, 0.95))
        slot = room.wall_slot(length, 0.0, 0.88, dep + 0.4, margin=0.05, corner_ok=True)
        if slot is None:
            if i > 0:
                continue
            slot = room.wall_slot(1.0, 0.0, 0.88, dep, margin=0.0, tries=300)
            if slot is None:
                continue
        w, s0, length = slot
        s1 = s0 + length
        room.reserve_wall(w, s0, s1, 0.0, 0.88, dep + 0.4)
        wall = room.walls[w]
        seat = float(rng.uniform(0.38, 0.46))
        back_h = float(rng.uniform(0.72, 0.86))
        bt = float(rng.uniform(0.15, 0.25))
        arm = float(rng.uniform(0.12, 0.2)) if length > 1.1 else 0.08
        arm_h = float(rng.uniform(0.55, 0.65))
        pts = np.concatenate(
            [
                s.box([s0 + arm, bt, 0.0], [s1 - arm, dep, seat], skip="z0x0x1y0"),
                s.box([s0, 0.0, 0.0], [s1, bt, back_h], skip="z0y0"),
                s.box([s0, bt, 0.0], [s0 + arm, dep, arm_h], skip="z0y0"),
                s.box([s1 - arm, bt, 0.0], [s1, dep, arm_h], skip="z0y0"),
            ]
        )
        room.add("sofa", [(wall.to_world(pts), object_color(rng, SOFA_COLORS), 10.0)])
        room.carves.append(Carve(*wall.box_world([s0, -0.05, -0.05], [s1, dep, back_h])))


def table_points(room: RoomBuilder, lx, ly, h, style) -> tuple[np.ndarray, np.ndarray]:
    """Table in its local frame: centre of the top at (0, 0), top surface at z = h."""
    s, rng = room.s, room.rng
    tt = float(rng.uniform(0.025, 0.05))
    top = s.box([-lx / 2, -ly / 2, h - tt], [lx / 2, ly / 2, h])
    legs = []
    if style == "legs":
        lw = float(rng.uniform(0.04, 0.07))
        ins = float(rng.uniform(0.03, 0.1))
        for sx in (-1, 1):
            for sy in (-1, 1):
                cx = sx * (lx / 2 - ins - lw / 2)
                cy = sy * (ly / 2 - ins - lw / 2)
                legs.append(
                    s.box(
                        [cx - lw / 2, cy - lw / 2, 0],
                        [cx + lw / 2, cy + lw / 2, h - tt],
                        skip="z0z1",
                    )
                )
    elif style == "panels":
        for sx in (-1, 1):
            x = sx * (lx / 2 - 0.05)
            legs.append(
                s.box(
                    [x - 0.015, -ly / 2 + 0.05, 0],
                    [x + 0.015, ly / 2 - 0.05, h - tt],
                    skip="z0z1",
                )
            )
    else:  # pedestal
        legs.append(s.cylinder(0.0, 0.0, 0.0, h - tt, 0.05))
        legs.append(s.cylinder(0.0, 0.0, 0.0, 0.03, min(lx, ly) * 0.35, top=True))
    return top, np.concatenate(legs)


def place_table(room: RoomBuilder, lx, ly, h, center, yaw, style=None) -> None:
    rng = room.rng
    style = style or ("legs", "panels", "pedestal")[int(rng.choice(3, p=[0.6, 0.25, 0.15]))]
    top, legs = table_points(room, lx, ly, h, style)
    r = rot_z(yaw)
    c = np.array([center[0], center[1], 0.0])
    top_c = object_color(rng, TABLE_COLORS)
    leg_c = top_c * rng.uniform(0.8, 1.0) if rng.random() < 0.5 else object_color(rng, METAL_COLORS)
    room.add("table", [(top @ r.T + c, top_c, 9.0), (legs @ r.T + c, leg_c, 8.0)])
    room.tables.append((c, yaw, lx, ly, h))


def add_chair(room: RoomBuilder, pos, yaw) -> None:
    """A chair whose front faces +y in its frame, turned by `yaw` and placed at `pos`."""
    rng, s = room.rng, room.s
    w = float(rng.uniform(0.42, 0.52))
    d = float(rng.uniform(0.42, 0.5))
    sh = float(rng.uniform(0.42, 0.5))
    bh = float(rng.uniform(0.35, 0.55))
    office = rng.random() < 0.55
    seat = s.box([-w / 2, -d / 2, sh - 0.06], [w / 2, d / 2, sh])
    back = s.box([-w / 2, -d / 2 - 0.05, sh], [w / 2, -d / 2, sh + bh])
    legs = []
    if office:
        legs.append(s.cylinder(0.0, 0.0, 0.09, sh - 0.06, 0.025))
        a0 = rng.uniform(0, 2 * math.pi)
        for k in range(5):
            arm = s.box([0.0, -0.02, 0.05], [0.3, 0.02, 0.09], skip="x0")
            caster = s.box([0.25, -0.02, 0.0], [0.3, 0.02, 0.05], skip="z0z1")
            legs.append(np.concatenate([arm, caster]) @ rot_z(a0 + k * 2 * math.pi / 5).T)
        if rng.random() < 0.6:  # armrests
            for sx in (-1, 1):
                x = sx * (w / 2 + 0.03)
                legs.append(
                    s.box(
                        [x - 0.03, -d / 2 + 0.05, sh + 0.17],
                        [x + 0.03, d / 2 - 0.05, sh + 0.21],
                    )
                )
    else:
        lw = 0.03
        for sx in (-1, 1):
            for sy in (-1, 1):
                cx, cy = sx * (w / 2 - lw), sy * (d / 2 - lw)
                top_z = sh + bh if sy < 0 else sh - 0.06  # rear legs carry the back
                legs.append(
                    s.box(
                        [cx - lw / 2, cy - lw / 2, 0.0],
                        [cx + lw / 2, cy + lw / 2, top_z],
                        skip="z0z1",
                    )
                )
    r = rot_z(yaw)
    c = np.array([pos[0], pos[1], 0.0])
    fabric = object_color(rng, CHAIR_COLORS)
    room.add(
        "chair",
        [
            (seat @ r.T + c, fabric, 9.0),
            (back @ r.T + c, fabric * rng.uniform(0.9, 1.1), 9.0),
            (np.concatenate(legs) @ r.T + c, object_color(rng, METAL_COLORS), 8.0),
        ],
    )


def add_furniture(room: RoomBuilder) -> None:
    rng = room.rng
    kind = room.t.center_table
    # Central table first (largest footprint), chairs around it.
    if kind == "conference":
        lx = float(min(rng.uniform(2.4, 4.5), room.L - 2.4))
        ly = float(min(rng.uniform(1.0, 1.4), room.W - 2.4))
        lx, ly = max(lx, 1.2), max(ly, 0.8)
        slot = room.floor_slot(lx / 2 + 0.7, ly / 2 + 0.7, margin=0.05)
        if slot is not None:
            h = float(rng.uniform(0.72, 0.78))
            place_table(room, lx, ly, h, slot, float(rng.normal(0, 0.03)))
            room.floor_used.append(
                (
                    slot[0] - lx / 2 - 0.7,
                    slot[1] - ly / 2 - 0.7,
                    slot[0] + lx / 2 + 0.7,
                    slot[1] + ly / 2 + 0.7,
                )
            )
            n_side = max(1, int(lx / rng.uniform(0.65, 0.85)))
            for side in (-1, 1):
                for k in range(n_side):
                    if rng.random() < 0.15:
                        continue  # an empty seat
                    x = slot[0] - lx / 2 + (k + 0.5) * lx / n_side + rng.normal(0, 0.05)
                    y = slot[1] + side * (ly / 2 + rng.uniform(0.15, 0.45))
                    yaw = (0.0 if side < 0 else math.pi) + rng.normal(0, 0.25)
                    if room.inside(x, y):
                        add_chair(room, (x, y), yaw)
    elif kind == "coffee":
        for _ in range(int(rng.integers(1, 3))):
            lx, ly = float(rng.uniform(0.8, 1.3)), float(rng.uniform(0.5, 0.8))
            slot = room.floor_slot(lx / 2 + 0.3, ly / 2 + 0.3)
            if slot is None:
                continue
            room.floor_used.append(
                (
                    slot[0] - lx / 2 - 0.3,
                    slot[1] - ly / 2 - 0.3,
                    slot[0] + lx / 2 + 0.3,
                    slot[1] + ly / 2 + 0.3,
                )
            )
            yaw = float(rng.normal(0, 0.05))
            place_table(room, lx, ly, float(rng.uniform(0.4, 0.5)), slot, yaw)
    # Desks against walls, one chair each.
    n_desks = room.count(room.t.desks)
    for _ in range(n_desks):
        lx, ly = float(rng.uniform(1.0, 1.6)), float(rng.uniform(0.6, 0.8))
        slot = room.wall_slot(lx, 0.0, 0.8, ly + 0.8, margin=0.05, corner_ok=True)
        if slot is None:
            continue
        w, s0, lx = slot
        room.reserve_wall(w, s0, s0 + lx, 0.0, 0.8, ly + 0.8)
        wall = room.walls[w]
        centre = wall.to_world(np.array([[s0 + lx / 2, ly / 2 + 0.02, 0.0]]))[0]
        yaw = math.atan2(wall.u[1], wall.u[0])
        place_table(room, lx, ly, float(rng.uniform(0.72, 0.78)), centre[:2], yaw)
        cpos = wall.to_world(
            np.array([[s0 + lx / 2 + rng.normal(0, 0.15), ly + rng.uniform(0.05, 0.35), 0.0]])
        )[0]
        # The chair faces the wall: its front (+y local) points along -n.
        yaw_c = math.atan2(-wall.n[1], -wall.n[0]) - math.pi / 2 + rng.normal(0, 0.3)
        add_chair(room, cpos[:2], yaw_c)
    if not any(o.cls == "table" for o in room.objects):
        # Every room has a table: a small free-standing one (side table), wherever it fits.
        lx, ly = 0.7, 0.6
        slot = room.floor_slot(lx / 2 + 0.1, ly / 2 + 0.1, margin=0.05, tries=400)
        if slot is None:
            slot = (room.L / 2, room.W / 2)
        room.floor_used.append(
            (slot[0] - lx / 2, slot[1] - ly / 2, slot[0] + lx / 2, slot[1] + ly / 2)
        )
        place_table(room, lx, ly, float(rng.uniform(0.6, 0.76)), slot, 0.0, style="legs")
    n_extra = room.count(room.t.extra_chairs)
    if not any(o.cls == "chair" for o in room.objects):
        n_extra = max(n_extra, 1)
    placed = 0
    for _ in range(n_extra * 20):
        if placed >= n_extra:
            break
        slot = room.floor_slot(0.35, 0.35, margin=0.05, tries=1)
        if slot is None:
            continue
        room.floor_used.append((slot[0] - 0.35, slot[1] - 0.35, slot[0] + 0.35, slot[1] + 0.35))
        add_chair(room, slot, float(rng.uniform(0, 2 * math.pi)))
        placed += 1
    if not any(o.cls == "chair" for o in room.objects):
        add_chair(room, (room.L / 2 + 0.6, room.W / 2), 0.0)
