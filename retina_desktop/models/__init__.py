"""Models on disk: their files, bundles, legacy HDF5, layer lookup, calibration and the familiarity flag."""
