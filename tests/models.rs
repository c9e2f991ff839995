//! Model construction: the official parameter counts and names, and config validation.

use recur::models::{ModelConfig, Reasoner};
use recur::Params;

fn built_count(cfg: &ModelConfig) -> (usize, Params) {
    let mut params = Params::new();
    Reasoner::new(&mut params, cfg.clone(), 0).unwrap();
    (params.num_elements(), params)
}

#[test]
fn parameter_counts_equal_the_papers() {
    let cases = [
        ("trm-att sudoku", ModelConfig::trm_att_sudoku(), 6_828_034),
        ("trm-mlp sudoku", ModelConfig::trm_mlp_sudoku(), 5_028_866),
        ("hrm sudoku", ModelConfig::hrm_sudoku(), 27_275_266),
    ];
    for (name, cfg, want) in cases {
        assert_eq!(cfg.num_parameters(), want, "{name}: formula");
        let (built, params) = built_count(&cfg);
        assert_eq!(built, want, "{name}: built model");
        // Buffers are not parameters.
        for buffer in ["H_init", "L_init", "puzzle_emb.weights"] {
            assert!(params.id(buffer).is_none(), "{name}: {buffer} is a buffer");
        }
    }
}

#[test]
fn other_tasks_and_the_small_configuration_match_the_spec_table() {
    let small = |cfg: ModelConfig| ModelConfig {
        hidden_size: 64,
        num_heads: 2,
        puzzle_emb_ndim: 64,
        ..cfg
    };
    let maze = |cfg: ModelConfig| ModelConfig {
        vocab_size: 6,
        seq_len: 900,
        ..cfg
    };
    let cases = [
        (
            "small trm-att",
            small(ModelConfig::trm_att_sudoku()),
            132_610,
        ),
        (
            "small trm-mlp",
            small(ModelConfig::trm_mlp_sudoku()),
            397_826,
        ),
        ("small hrm", small(ModelConfig::hrm_sudoku()), 525_826),
        (
            "trm-att maze",
            maze(ModelConfig::trm_att_sudoku()),
            6_822_914,
        ),
        (
            "trm-mlp maze",
            maze(ModelConfig::trm_mlp_sudoku()),
            18_795_522,
        ),
        ("hrm maze", maze(ModelConfig::hrm_sudoku()), 27_270_146),
    ];
    for (name, cfg, want) in cases {
        assert_eq!(cfg.num_parameters(), want, "{name}");
    }
    let (built, _) = built_count(&small(ModelConfig::trm_mlp_sudoku()));
    assert_eq!(built, 397_826);
}

#[test]
fn official_names_and_shapes() {
    let (_, params) = built_count(&ModelConfig::trm_mlp_sudoku());
    let shape = |n: &str| params.value(params.id(n).unwrap()).dims().to_vec();
    assert_eq!(
        shape("L_level.layers.1.mlp_t.gate_up_proj.weight"),
        [1024, 97]
    );
    assert_eq!(shape("L_level.layers.1.mlp_t.down_proj.weight"), [97, 512]);
    assert_eq!(
        shape("L_level.layers.0.mlp.gate_up_proj.weight"),
        [3072, 512]
    );
    assert_eq!(shape("q_head.bias"), [2]);
    let q_bias = params
        .value(params.id("q_head.bias").unwrap())
        .to_vec_f32()
        .unwrap();
    assert_eq!(q_bias, [-5.0, -5.0]);
}

#[test]
fn invalid_configs_are_rejected_with_the_field_name() {
    type Edit = Box<dyn Fn(&mut ModelConfig)>;
    let cases: [(&str, Edit); 4] = [
        ("num_heads", Box::new(|c| c.num_heads = 7)),
        ("hidden_size", Box::new(|c| c.hidden_size = 0)),
        (
            "puzzle_emb_len",
            Box::new(|c| {
                c.puzzle_emb_len = 1;
                c.puzzle_emb_ndim = 1024
            }),
        ),
        (
            "halt_exploration_prob",
            Box::new(|c| c.halt_exploration_prob = 1.5),
        ),
    ];
    for (field, edit) in cases {
        let mut cfg = ModelConfig::trm_att_sudoku();
        edit(&mut cfg);
        let err = Reasoner::new(&mut Params::new(), cfg, 0)
            .err()
            .expect(field);
        assert!(err.to_string().contains(field), "{field}: {err}");
    }
}
