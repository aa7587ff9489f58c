"""The run's HDF5 dataset: one file per run, written resumably, read with every row checked.

* :mod:`~gannotate.io.hdf5.layout` — what writer and reader agree on: names, attrs, checksums, the layout;
* :mod:`~gannotate.io.hdf5.writer` — :class:`DatasetWriter` (append, commit, resume, disk-full safety);
* :mod:`~gannotate.io.hdf5.reader` — :class:`DatasetReader` (committed rows only, CRC-checked).

``from gannotate.io.hdf5 import DatasetReader`` (and the names below) is the public way in; what only
writer and reader share (checksums, field tables) is imported from :mod:`~gannotate.io.hdf5.layout`.
"""

from gannotate.io.hdf5.layout import COORD_ORIGIN, FORMAT_VERSION
from gannotate.io.hdf5.reader import DatasetReader, ImageRows
from gannotate.io.hdf5.writer import DatasetWriter, failed_writes

__all__ = ["DatasetWriter", "DatasetReader", "ImageRows", "FORMAT_VERSION", "COORD_ORIGIN", "failed_writes"]
