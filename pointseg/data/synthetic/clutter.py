"""Clutter of a synthetic room: radiators, things on tables, boxes, bins, plants, pictures, copiers.

Clutter has random colours (so colour alone never tells it apart), and is placed last, in the
space the structure and the furniture left.
"""

from __future__ import annotations

import numpy as np

from pointseg.data.synthetic.builder import Carve, RoomBuilder
from pointseg.data.synthetic.catalog import ROOM_TYPES, SynthObject
from pointseg.data.synthetic.sampling import rand_hue_color, rot_z


def add_clutter(room: RoomBuilder) -> None:
    rng, s = room.rng, room.s
    n = room.count(room.t.clutter)
    made = 0
    # A radiator under some windows (clutter in S3DIS), white like the frame.
    for w, s0, s1, sill in room.windows:
        if rng.random() < 0.4 and sill > 0.75:
            wall = room.walls[w]
            pts = s.box([s0 + 0.1, 0.03, 0.12], [s1 - 0.1, 0.12, sill - 0.15], skip="y0")
            room.add("clutter", [(wall.to_world(pts), (205, 205, 200), 8.0)])
            room.carves.append(
                Carve(
                    *wall.box_world([s0 + 0.1, -0.05, 0.12], [s1 - 0.1, 0.12, sill - 0.15]),
                    ("wall",),
                )
            )
            made += 1
    kinds = ["on_table", "floor_box", "bin", "plant", "picture", "on_table", "floor_box"]
    if room.t is ROOM_TYPES["copyRoom"]:
        kinds += ["copier", "copier"]
    tries = 0
    while made < max(n, 1) and tries < 10 * max(n, 1):
        tries += 1
        kind = kinds[int(rng.integers(len(kinds)))]
        col = rand_hue_color(rng)
        if kind == "on_table" and room.tables:
            c, yaw, lx, ly, h = room.tables[int(rng.integers(len(room.tables)))]
            sx, sy = float(rng.uniform(0.1, 0.35)), float(rng.uniform(0.1, 0.3))
            sz = float(rng.choice([0.02, rng.uniform(0.05, 0.4)]))
            if sx > lx - 0.1 or sy > ly - 0.1:
                continue
            px = float(rng.uniform(-lx / 2 + sx / 2, lx / 2 - sx / 2))
            py = float(rng.uniform(-ly / 2 + sy / 2, ly / 2 - sy / 2))
            local = s.box(
                [px - sx / 2, py - sy / 2, h], [px + sx / 2, py + sy / 2, h + sz], skip="z0"
            )
            # Turned about its own centre (not aligned with the table), then table → room.
            centre = np.array([px, py, 0.0])
            local = (local - centre) @ rot_z(rng.uniform(-0.3, 0.3)).T + centre
            pts = local @ rot_z(yaw).T + c
        elif kind in ("floor_box", "copier"):
            if kind == "copier":
                sx, sy, sz = 0.6, 0.55, float(rng.uniform(0.9, 1.2))
                col = np.array([200.0, 200.0, 195.0]) * rng.uniform(0.8, 1.05)
            else:
                sx, sy = float(rng.uniform(0.25, 0.6)), float(rng.uniform(0.25, 0.6))
                sz = float(rng.uniform(0.2, 0.7))
            slot = room.floor_slot(sx / 2, sy / 2, margin=0.02, tries=30)
            if slot is None:
                continue
            lo = np.array([slot[0] - sx / 2, slot[1] - sy / 2, 0.0])
            hi = np.array([slot[0] + sx / 2, slot[1] + sy / 2, sz])
            room.floor_used.append((lo[0], lo[1], hi[0], hi[1]))
            room.carves.append(Carve(lo - 0.01, hi, ("floor", "wall")))
            pts = s.box(lo, hi, skip="z0")
        elif kind == "bin":
            r = float(rng.uniform(0.12, 0.2))
            slot = room.floor_slot(r, r, margin=0.02, tries=30)
            if slot is None:
                continue
            room.floor_used.append((slot[0] - r, slot[1] - r, slot[0] + r, slot[1] + r))
            hz = float(rng.uniform(0.3, 0.5))
            pts = np.concatenate(
                [
                    s.cylinder(slot[0], slot[1], 0.0, hz, r * 0.85, r),
                    s.cylinder(slot[0], slot[1], 0.02, hz, r * 0.8, r * 0.95, bottom=True),
                ]
            )
        elif kind == "plant":
            r = float(rng.uniform(0.12, 0.2))
            slot = room.floor_slot(r + 0.1, r + 0.1, margin=0.02, tries=30)
            if slot is None:
                continue
            room.floor_used.append((slot[0] - r, slot[1] - r, slot[0] + r, slot[1] + r))
            ph = float(rng.uniform(0.25, 0.4))
            pot = s.cylinder(slot[0], slot[1], 0.0, ph, r * 0.8, r, top=True)
            fr = float(rng.uniform(0.25, 0.4))
            leaves = s.ellipsoid([slot[0], slot[1], ph + fr], [fr, fr, fr * 1.3])
            leaves += rng.normal(0, 0.04, leaves.shape)  # foliage is not a smooth surface
            green = np.array([60.0, 110.0, 50.0]) * rng.uniform(0.7, 1.2)
            room.add("clutter", [(pot, col, 10.0), (leaves, green, 18.0)])
            made += 1
            continue
        elif kind == "picture":
            pw, ph = float(rng.uniform(0.3, 0.9)), float(rng.uniform(0.3, 0.7))
            z0 = float(rng.uniform(1.2, 1.7))
            slot = room.wall_slot(pw, z0, z0 + ph, 0.0, margin=0.1, tries=20)
            if slot is None:
                continue
            w, s0, pw = slot
            room.reserve_wall(w, s0, s0 + pw, z0, z0 + ph, 0.0)
            wall = room.walls[w]
            local = s.box([s0, 0.0, z0], [s0 + pw, 0.03, z0 + ph], skip="y0")
            pts = wall.to_world(local)
            room.carves.append(
                Carve(*wall.box_world([s0, -0.05, z0], [s0 + pw, 0.03, z0 + ph]), ("wall",))
            )
            # A picture: noisy random colours, not a uniform panel.
            rgb = np.clip(np.rint(col + rng.normal(0, 35, (len(pts), 3))), 0, 255).astype(np.uint8)
            room.objects.append(SynthObject("clutter", pts, rgb))
            made += 1
            continue
        else:
            continue
        room.add("clutter", [(pts, col, 12.0)])
        made += 1
    if not any(o.cls == "clutter" for o in room.objects):
        lo = np.array([room.L / 2, 0.05, 0.0])
        pts = room.s.box(lo, lo + [0.3, 0.3, 0.3], skip="z0")
        room.add("clutter", [(pts, rand_hue_color(rng), 12.0)])
