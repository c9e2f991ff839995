//! Compiled module images (CUBIN for a real architecture, PTX otherwise), cached in memory for
//! the process and on disk across processes, keyed by a hash of everything that determines the
//! output: NVRTC's version, the target, the options and the expanded source. A changed kernel or
//! header therefore never loads stale code, and an unchanged one compiles once per machine.
//!
//! Disk location: `$RECUR_PTX_CACHE` if set (`off` disables the disk cache), else
//! `$XDG_CACHE_HOME/recur/ptx`, else `~/.cache/recur/ptx`. The cache is only a cache: unreadable
//! or unwritable entries fall back to compiling.

use crate::device::cuda::{libraries, nvrtc};
use crate::error::Result;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

pub const CACHE_DIR_VAR: &str = "RECUR_PTX_CACHE";

/// Machine code or PTX ready for `cuModuleLoadData`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModuleImage {
    Cubin(Vec<u8>),
    Ptx(String),
}

impl ModuleImage {
    fn extension(&self) -> &'static str {
        match self {
            ModuleImage::Cubin(_) => "cubin",
            ModuleImage::Ptx(_) => "ptx",
        }
    }
    fn bytes(&self) -> &[u8] {
        match self {
            ModuleImage::Cubin(b) => b,
            ModuleImage::Ptx(s) => s.as_bytes(),
        }
    }
}

/// The folder of the on-disk cache, or `None` when disabled or no home is known.
pub fn cache_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var(CACHE_DIR_VAR) {
        return (dir != "off").then(|| PathBuf::from(dir));
    }
    var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|base| base.join("recur").join("ptx"))
}

/// The image of kernel file `unit` (expanded `source`) for `arch`: from memory, else from disk,
/// else compiled (and then stored in both).
pub fn module_image(unit: &str, source: &str, arch: &str) -> Result<Arc<ModuleImage>> {
    static MEMORY: OnceLock<Mutex<HashMap<String, Arc<ModuleImage>>>> = OnceLock::new();
    let key = cache_key(source, arch)?;
    let memory = MEMORY.get_or_init(Default::default);
    if let Some(image) = memory.lock().expect("image cache lock").get(&key) {
        return Ok(image.clone());
    }
    let image = match read_from_disk(&key, arch) {
        Some(image) => image,
        None => {
            let image = compile_image(unit, source, arch)?;
            write_to_disk(&key, &image);
            image
        }
    };
    let image = Arc::new(image);
    memory
        .lock()
        .expect("image cache lock")
        .insert(key, image.clone());
    Ok(image)
}

/// Compiles `unit` afresh, bypassing both caches (used when a cached image fails to load).
pub fn recompile(unit: &str, source: &str, arch: &str) -> Result<Arc<ModuleImage>> {
    let image = compile_image(unit, source, arch)?;
    write_to_disk(&cache_key(source, arch)?, &image);
    Ok(Arc::new(image))
}

fn compile_image(unit: &str, source: &str, arch: &str) -> Result<ModuleImage> {
    let compiled = nvrtc::compile(unit, source, arch, &[])?;
    Ok(match compiled.cubin {
        Some(cubin) => ModuleImage::Cubin(cubin),
        None => ModuleImage::Ptx(compiled.ptx),
    })
}

/// Hex FNV-1a (128-bit) of NVRTC's version, the target, the options and the source.
fn cache_key(source: &str, arch: &str) -> Result<String> {
    let version = libraries::nvrtc()
        .map_err(crate::device::cuda::cuda_error)?
        .version;
    let mut hasher = Fnv1a128::default();
    hasher.write(format!("nvrtc {}.{}\0{arch}\0", version.0, version.1).as_bytes());
    for option in nvrtc::BASE_OPTIONS {
        hasher.write(option.as_bytes());
        hasher.write(b"\0");
    }
    hasher.write(source.as_bytes());
    Ok(format!("{:032x}", hasher.0))
}

fn entry_path(key: &str, arch: &str) -> Option<PathBuf> {
    let extension = if arch.starts_with("sm_") {
        "cubin"
    } else {
        "ptx"
    };
    cache_dir().map(|dir| dir.join(format!("{key}.{extension}")))
}

fn read_from_disk(key: &str, arch: &str) -> Option<ModuleImage> {
    let bytes = std::fs::read(entry_path(key, arch)?).ok()?;
    if arch.starts_with("sm_") {
        Some(ModuleImage::Cubin(bytes))
    } else {
        String::from_utf8(bytes).ok().map(ModuleImage::Ptx)
    }
}

/// Writes through a temporary file and a rename, so a concurrent reader never sees half an
/// image.
fn write_to_disk(key: &str, image: &ModuleImage) {
    let Some(dir) = cache_dir() else { return };
    let path = dir.join(format!("{key}.{}", image.extension()));
    let temp = dir.join(format!("{key}.{}.tmp", std::process::id()));
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&temp, image.bytes()))
        .and_then(|()| std::fs::rename(&temp, &path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
}

/// FNV-1a with the 128-bit parameters: stable across Rust versions and machines, unlike
/// `DefaultHasher`, which an on-disk key needs.
struct Fnv1a128(u128);

impl Default for Fnv1a128 {
    fn default() -> Self {
        Fnv1a128(0x6c62272e07bb014262b821756295c58d)
    }
}

impl Fnv1a128 {
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u128).wrapping_mul(Self::PRIME);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_128_matches_the_published_test_vectors() {
        let hash = |s: &str| {
            let mut h = Fnv1a128::default();
            h.write(s.as_bytes());
            h.0
        };
        assert_eq!(hash(""), 0x6c62272e07bb014262b821756295c58d);
        assert_eq!(hash("a"), 0xd228cb696f1a8caf78912b704e4a8964);
    }
}
