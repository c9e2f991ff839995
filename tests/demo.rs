//! The demo trainer: it learns, and it is bit-for-bit deterministic for a seed, whatever the
//! number of CPU threads.

use recur::demo::{self, DemoConfig, Progress};

fn small() -> DemoConfig {
    DemoConfig {
        seq_len: 8,
        vocab: 5,
        hidden_size: 32,
        num_heads: 2,
        batch_size: 16,
        eval_size: 64,
        eval_every: 10,
        ..DemoConfig::default()
    }
}

/// Every step's loss, bit for bit.
fn losses(cfg: &DemoConfig) -> Vec<u64> {
    let mut out = Vec::new();
    demo::train(cfg, |p| {
        if let Progress::Step { loss, .. } = p {
            out.push(loss.to_bits());
        }
    })
    .unwrap();
    out
}

#[test]
fn same_seed_is_bit_identical_across_thread_counts_and_other_seeds_differ() {
    // The default sizes, large enough that the ops take their multi-threaded paths.
    let cfg = DemoConfig {
        max_steps: 6,
        target_accuracy: 2.0, // never stop early
        ..DemoConfig::default()
    };
    let pool = |n| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    };
    let one = pool(1).install(|| losses(&cfg));
    let two = pool(2).install(|| losses(&cfg));
    let again = pool(2).install(|| losses(&cfg));
    assert_eq!(one.len(), 6);
    assert_eq!(one, two);
    assert_eq!(two, again);
    let other = losses(&DemoConfig { seed: 1, ..cfg });
    assert_ne!(one, other);
}

#[test]
fn training_lowers_the_loss_and_beats_chance() {
    let cfg = DemoConfig {
        max_steps: 60,
        target_accuracy: 2.0,
        ..small()
    };
    let mut first = None;
    let mut last = 0.0;
    let report = demo::train(&cfg, |p| {
        if let Progress::Step { loss, .. } = p {
            first.get_or_insert(loss);
            last = loss;
        }
    })
    .unwrap();
    assert_eq!(report.steps, 60);
    assert!(
        last < 0.6 * first.unwrap(),
        "loss {} -> {last}",
        first.unwrap()
    );
    // Chance is 1/5 per token; sorting short sequences is easy to beat it by far.
    assert!(
        report.test_accuracy > 0.5,
        "accuracy {}",
        report.test_accuracy
    );
}

#[test]
fn bad_settings_are_errors() {
    assert!(demo::train(
        &DemoConfig {
            batch_size: 0,
            ..small()
        },
        |_| {}
    )
    .is_err());
    assert!(demo::train(
        &DemoConfig {
            vocab: 1,
            ..small()
        },
        |_| {}
    )
    .is_err());
    assert!(demo::train(
        &DemoConfig {
            num_heads: 3,
            ..small()
        },
        |_| {}
    )
    .is_err());
    assert!(demo::train(
        &DemoConfig {
            lr: -1.0,
            ..small()
        },
        |_| {}
    )
    .is_err());
}
