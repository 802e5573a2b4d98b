"""Auto-annotation: run SEEM over many images and store its answers as proposals for review.

A run is a pipeline: the driver (`run.py`) reads the project, turns images into plain `ImageTask`s
(`work.py`), hands them to a pluggable `Executor` (`executor.py`: threads on this machine, or Ray),
which runs the one per-image code path (`annotator.ImageAnnotator`) and yields `ImageResult`s; the
driver merges each result into the store in one transaction. Nothing here imports Qt.
"""
