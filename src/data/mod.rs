//! Tasks: puzzle encodings, generators, loaders, augmentations and splits.

pub mod sudoku;
