"""The run's HDF5 dataset: one file per run, written resumably, read with every row checked.

* :mod:`~gannotate.io.hdf5.layout` — what writer and reader agree on: names, attrs, checksums, the layout;
* :mod:`~gannotate.io.hdf5.writer` — :class:`DatasetWriter` (append, commit, resume, disk-full safety);
* :mod:`~gannotate.io.hdf5.reader` — :class:`DatasetReader` (committed rows only, CRC-checked).

``from gannotate.io.hdf5 import DatasetReader`` (and every name below) is the public way in.
"""

from gannotate.io.hdf5.layout import (
    COORD_ORIGIN,
    CRC_DATASET,
    FORMAT_VERSION,
    OPTIONAL_ROW_DATASETS,
    ROW_DATASETS,
    SAMPLE_FIELDS,
    TRUTH_CRC_DATASET,
    TRUTH_FIELDS,
    attr_value,
    decode_strings,
    image_crc32,
    py_value,
    truth_crc32,
)
from gannotate.io.hdf5.reader import DatasetReader, ImageRows, check_truth, truth_fields
from gannotate.io.hdf5.writer import DatasetWriter, failed_writes

__all__ = [
    # layout
    "FORMAT_VERSION", "COORD_ORIGIN", "ROW_DATASETS", "OPTIONAL_ROW_DATASETS", "CRC_DATASET", "TRUTH_CRC_DATASET",
    "TRUTH_FIELDS", "SAMPLE_FIELDS", "image_crc32", "truth_crc32", "attr_value", "py_value", "decode_strings",
    # reader
    "DatasetReader", "ImageRows", "truth_fields", "check_truth",
    # writer
    "DatasetWriter", "failed_writes",
]
