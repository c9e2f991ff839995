//! Finding the two NVIDIA libraries the CUDA backend loads at run time: the driver (`libcuda`)
//! and the run-time compiler (`libnvrtc`).
//!
//! cudarc opens both by bare name on first use (LD_LIBRARY_PATH, then the ldconfig cache) and
//! panics if that fails, so every entry point here checks presence first and turns absence into
//! an explanation. NVRTC has one more trap: the PyPI wheel's `libnvrtc.so.13` has no RUNPATH, so
//! it cannot find its own `libnvrtc-builtins.so.13.0` next to it. Setting `RECUR_NVRTC_DIR` to
//! the folder holding both makes this module open them by absolute path first (builtins first);
//! glibc then hands cudarc the already-loaded library when it asks for it by its SONAME.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Folder holding `libnvrtc.so.13` and `libnvrtc-builtins.so.13.0` (the wheel's
/// `site-packages/nvidia/cu13/lib`, or a toolkit's `lib64`).
pub const NVRTC_DIR_VAR: &str = "RECUR_NVRTC_DIR";

/// The SONAME cudarc asks for (its candidate list for CUDA 13 includes `libnvrtc.so.13`).
const NVRTC_SONAME: &str = "libnvrtc.so.13";
/// The library `libnvrtc.so.13` itself opens by bare name while compiling.
const NVRTC_BUILTINS: &str = "libnvrtc-builtins.so.13.0";

/// What to do when NVRTC is missing; part of every "not found" message.
pub const HOW_TO_GET_NVRTC: &str = "install the pinned wheels into a venv \
(`pip install --no-deps nvidia-cuda-nvrtc==13.0.88 nvidia-cuda-runtime==13.0.96 \
nvidia-cuda-crt==13.0.88`; tools/test.sh does this in .ci/venv) and set RECUR_NVRTC_DIR to its \
site-packages/nvidia/cu13/lib folder, or put a CUDA 13.0 toolkit's lib64 on LD_LIBRARY_PATH";

/// The NVRTC this process compiles with.
#[derive(Clone, Debug)]
pub struct Nvrtc {
    /// (major, minor), e.g. (13, 0).
    pub version: (i32, i32),
    /// The file the dynamic loader actually mapped, when it can be told.
    pub path: Option<PathBuf>,
    /// Real architectures it can emit code for, as numbers (`90` for sm_90).
    pub supported_archs: Vec<i32>,
}

/// Loads NVRTC once per process (honouring `RECUR_NVRTC_DIR`) and describes it, or says why it
/// cannot be loaded and how to get it.
pub fn nvrtc() -> Result<&'static Nvrtc, String> {
    static NVRTC: OnceLock<Result<Nvrtc, String>> = OnceLock::new();
    NVRTC.get_or_init(load_nvrtc).as_ref().map_err(Clone::clone)
}

fn load_nvrtc() -> Result<Nvrtc, String> {
    if let Some(dir) = std::env::var_os(NVRTC_DIR_VAR).filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        for file in [NVRTC_BUILTINS, NVRTC_SONAME] {
            preload(&dir.join(file)).map_err(|e| {
                format!(
                    "NVRTC not found: {NVRTC_DIR_VAR}={} but {e}; {HOW_TO_GET_NVRTC}",
                    dir.display()
                )
            })?;
        }
    }
    // Safety: only probes with dlopen; never calls into the library.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(format!(
            "NVRTC not found: {NVRTC_SONAME} is not on the loader's path; {HOW_TO_GET_NVRTC}"
        ));
    }
    let (mut major, mut minor) = (0, 0);
    // Safety: the library is present (checked above), so cudarc's lazy loader cannot panic.
    let status = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    if status != cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(format!("NVRTC loaded but nvrtcVersion failed: {status:?}"));
    }
    Ok(Nvrtc {
        version: (major, minor),
        path: mapped_library_path("libnvrtc.so"),
        supported_archs: supported_archs()?,
    })
}

fn supported_archs() -> Result<Vec<i32>, String> {
    use cudarc::nvrtc::sys::{nvrtcGetNumSupportedArchs, nvrtcGetSupportedArchs, nvrtcResult};
    let mut count = 0;
    // Safety: NVRTC is loaded; the buffer has exactly the size NVRTC reported.
    unsafe {
        if nvrtcGetNumSupportedArchs(&mut count) != nvrtcResult::NVRTC_SUCCESS {
            return Err("nvrtcGetNumSupportedArchs failed".into());
        }
        let mut archs = vec![0; count.max(0) as usize];
        if nvrtcGetSupportedArchs(archs.as_mut_ptr()) != nvrtcResult::NVRTC_SUCCESS {
            return Err("nvrtcGetSupportedArchs failed".into());
        }
        Ok(archs)
    }
}

/// Says whether the CUDA driver library can be loaded, and if not, what that means.
pub fn driver() -> Result<(), String> {
    // Safety: only probes with dlopen; never calls into the library.
    if unsafe { cudarc::driver::sys::is_culib_present() } {
        Ok(())
    } else {
        Err(
            "no CUDA driver: libcuda.so.1 is not on the loader's path (this machine has no \
             NVIDIA driver; the kernels still run on the CPU through the Emu backend)"
                .into(),
        )
    }
}

/// Opens a library by absolute path and keeps it loaded for the life of the process.
pub(super) fn preload(path: &Path) -> Result<(), String> {
    extern "C" {
        fn dlopen(filename: *const c_char, flags: c_int) -> *mut c_void;
        fn dlerror() -> *mut c_char;
    }
    const RTLD_NOW: c_int = 2;
    let c_path = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("{} contains a NUL byte", path.display()))?;
    // Safety: a valid C string; the handle is deliberately never closed, so the library stays
    // mapped for cudarc, which looks it up again by SONAME.
    let handle = unsafe { dlopen(c_path.as_ptr(), RTLD_NOW) };
    if handle.is_null() {
        // Safety: dlerror returns a thread-local C string (or null) describing the failure.
        let reason = unsafe {
            let msg = dlerror();
            if msg.is_null() {
                "unknown dlopen error".to_string()
            } else {
                CStr::from_ptr(msg).to_string_lossy().into_owned()
            }
        };
        return Err(format!("cannot load {}: {reason}", path.display()));
    }
    Ok(())
}

/// The path of the first mapped file whose name starts with `prefix`, from /proc/self/maps.
pub(super) fn mapped_library_path(prefix: &str) -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .map(PathBuf::from)
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
}
