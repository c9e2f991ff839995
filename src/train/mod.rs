//! Training and evaluating the Sudoku models: configuration and presets, the dataset, the
//! example stream, the trainer (one optimizer step per supervision segment), evaluation with
//! the depth curve, model checkpoints and resumable run state.

pub mod config;
pub mod dataset;
pub mod evaluate;
pub mod example_stream;
pub mod graph_mode;
pub mod model_file;
pub mod plots;
pub mod run_state;
pub mod step_inputs;
pub(crate) mod step_state;
pub mod trainer;

pub use config::{DataConfig, DataSource, RunConfig, TrainConfig};
pub use evaluate::{evaluate, EvalReport, Prediction};
pub use trainer::{StepReport, Trainer};
