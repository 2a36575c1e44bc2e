//! Sizes of the deployed artifacts: the arm64 `bootstrap` that `cargo lambda build --release
//! --arm64` writes to `target/lambda/<function>/`, and this machine's release binary.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// One ELF file's facts that matter here.
#[derive(Debug, Clone)]
pub struct Binary {
    pub path: PathBuf,
    pub bytes: u64,
    pub arch: &'static str,
    /// False when a `.symtab` section is still in the file.
    pub stripped: bool,
}

/// The arm64 `bootstrap` of `function`, if `cargo lambda build` produced one.
pub fn lambda_bootstrap(function: &str) -> Option<PathBuf> {
    let path = crate::target_dir()
        .join("lambda")
        .join(function)
        .join("bootstrap");
    path.is_file().then_some(path)
}

pub fn inspect(path: &Path) -> Result<Binary> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let (arch, stripped) = elf_facts(&data).with_context(|| format!("{} is not a 64-bit ELF", path.display()))?;
    Ok(Binary {
        path: path.to_path_buf(),
        bytes: data.len() as u64,
        arch,
        stripped,
    })
}

/// The machine and whether a symbol table is present, from the ELF64 headers.
fn elf_facts(data: &[u8]) -> Option<(&'static str, bool)> {
    if data.get(..5)? != b"\x7fELF\x02" || *data.get(5)? != 1 {
        return None; // only 64-bit little-endian
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(data.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(data.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(data.get(o..o + 8)?.try_into().ok()?));
    let arch = match u16_at(18)? {
        0x3e => "x86_64",
        0xb7 => "arm64",
        _ => "other",
    };
    let shoff = usize::try_from(u64_at(0x28)?).ok()?;
    let shentsize = usize::from(u16_at(0x3a)?);
    let shnum = usize::from(u16_at(0x3c)?);
    // Section type 2 is SHT_SYMTAB: the table `strip` removes.
    let has_symtab = (0..shnum).any(|i| u32_at(shoff + i * shentsize + 4) == Some(2));
    Some((arch, !has_symtab))
}

pub fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_000_000.0
}
