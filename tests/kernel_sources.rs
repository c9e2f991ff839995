//! build.rs embeds exactly the CUDA files present in kernels/, with their current contents.

#[test]
fn embedded_sources_match_the_kernels_directory() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels");
    let mut on_disk: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".cu") || n.ends_with(".cuh"))
        .map(|n| {
            let text = std::fs::read_to_string(dir.join(&n)).unwrap();
            (n, text)
        })
        .collect();
    on_disk.sort();
    let embedded: Vec<(String, String)> = recur::kernels::SOURCES
        .iter()
        .map(|(n, s)| (n.to_string(), s.to_string()))
        .collect();
    assert_eq!(embedded, on_disk);
    for (n, s) in &on_disk {
        assert_eq!(recur::kernels::source(n), Some(s.as_str()));
    }
    assert_eq!(recur::kernels::source("no-such-kernel.cu"), None);
}
