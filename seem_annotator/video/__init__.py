"""Videos and image sequences: importing them as frames, and propagating tracks through them.

Qt-free. Propagation drives any `SegmentationBackend` through its one interface (prompts made from
the previous frame's mask carried by optical flow); nothing here lives inside a backend.
"""
