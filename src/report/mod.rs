//! Run reports: metrics files (JSONL, CSV) and PNG plots of curves.
