"""pointseg's viewers: ground truth vs PlainGCN vs ResGCN (and any other models), side by side.

An installed package next to `pointseg` (see pyproject.toml); `pointseg view` is its command.

- `visualize.scene`: the `Scene` (one room, its ground truth, one prediction per model), the
  colourings, legends, visibility and display downsampling that every renderer shares.
- `visualize.sources`: builds a scene from a demo report, eval outputs, a room cache / raw room /
  PLY file (+ checkpoints).
- `visualize.viewer`: the Open3D window (key bindings) and its headless screenshots (Xvfb).
- `visualize.static`: the matplotlib renderer (`--no-window`, the demo's comparison.png).
- `visualize.export`: one binary PLY per panel.

Open3D is imported only inside `visualize.viewer`'s functions: importing this package never
needs it.
"""

from visualize.scene import COLORINGS, VIEWS, Scene

__all__ = ["COLORINGS", "VIEWS", "Scene"]
