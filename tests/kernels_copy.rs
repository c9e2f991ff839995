//! `copy_bytes`, the bandwidth-ceiling kernel: every byte arrives, at ragged lengths.

use recur::device::{KernelBackend, LaunchConfig};
use recur::kernels::copy::copy_bytes;

fn check_copy(dev: &dyn KernelBackend) {
    for (i, n) in [1usize, 15, 16, 17, 4095, 70_001].into_iter().enumerate() {
        let src: Vec<u8> = (0..n).map(|j| (j * 31 + i * 7 + 1) as u8).collect();
        let src_buf = dev.upload(&src).unwrap();
        // A destination that starts as something else entirely, so unwritten bytes show.
        let mut dst = dev.upload(&vec![0xA5u8; n]).unwrap();
        copy_bytes(dev, &mut dst, &src_buf).unwrap();
        assert_eq!(dev.download(&dst).unwrap(), src, "length {n}");
    }
    let mut short = dev.alloc(3).unwrap();
    assert!(copy_bytes(dev, &mut short, &dev.alloc(4).unwrap()).is_err());
    // The launch-config helper covers every element.
    assert_eq!(LaunchConfig::for_elements(257, 256).grid.0, 2);
}

recur::kernel_test!(copy, check_copy);
