//! Shared helpers of the libhatebm integration tests (golden-file loading, tolerances).
