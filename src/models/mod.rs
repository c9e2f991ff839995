//! The models and the deep-supervision / ACT loop they share.
