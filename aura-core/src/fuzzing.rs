//! Entry points for the fuzz targets (placeholder: being written).
