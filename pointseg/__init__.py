"""pointseg: DeepGCNs for 3D point clouds and graphs."""

__version__ = "0.1.0"
