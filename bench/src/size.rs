//! Sizes of the deployed artifacts: the arm64 `bootstrap` that `cargo lambda build --release
//! --arm64` writes to `target/lambda/<function>/`, and this machine's release binary.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::functions::{binary, FUNCTIONS};
use crate::report::{thousands, Limit::AtMost, Row, Section};

/// One ELF file's facts that matter here.
#[derive(Debug, Clone)]
pub struct Binary {
    pub bytes: u64,
    pub arch: &'static str,
    /// False when a `.symtab` section is still in the file.
    pub stripped: bool,
    /// `.eh_frame`, `.eh_frame_hdr` and `.gcc_except_table`: what unwinding a panic needs.
    pub unwind_bytes: u64,
}

const UNWIND_SECTIONS: &[&[u8]] = &[b".eh_frame", b".eh_frame_hdr", b".gcc_except_table"];

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
    let facts = elf_facts(&data)
        .with_context(|| format!("{} is not a 64-bit little-endian ELF", path.display()))?;
    Ok(Binary {
        bytes: data.len() as u64,
        arch: facts.arch,
        stripped: !facts.has_symtab,
        unwind_bytes: facts.unwind_bytes,
    })
}

struct ElfFacts {
    arch: &'static str,
    has_symtab: bool,
    unwind_bytes: u64,
}

/// The machine, whether a symbol table is present, and the unwind sections' size, from the
/// ELF64 headers.
fn elf_facts(data: &[u8]) -> Option<ElfFacts> {
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
    let section = |i: usize| shoff + i * shentsize;
    // Section names live in the section that e_shstrndx names.
    let names = usize::try_from(u64_at(section(usize::from(u16_at(0x3e)?)) + 0x18)?).ok()?;
    let name = |i: usize| -> Option<&[u8]> {
        let start = names + usize::try_from(u32_at(section(i))?).ok()?;
        let len = data.get(start..)?.iter().position(|b| *b == 0)?;
        data.get(start..start + len)
    };
    let (mut has_symtab, mut unwind_bytes) = (false, 0);
    for i in 0..shnum {
        // Section type 2 is SHT_SYMTAB: the table `strip` removes.
        has_symtab |= u32_at(section(i) + 4) == Some(2);
        if name(i).is_some_and(|n| UNWIND_SECTIONS.contains(&n)) {
            unwind_bytes += u64_at(section(i) + 0x20)?;
        }
    }
    Some(ElfFacts {
        arch,
        has_symtab,
        unwind_bytes,
    })
}

pub fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_000_000.0
}

/// The order-writer's size, the goal.
const ORDER_WRITER_MB: f64 = 4.0;

/// The arm64 `bootstrap`s (the order-writer's against its goal; this machine's release binary
/// stands in, and says so, when none was built), and this machine's release binaries.
pub fn section() -> Section {
    let mut section = Section::new("Binary size");
    let describe = |b: &Binary| {
        let stripped = if b.stripped {
            "stripped"
        } else {
            "NOT stripped"
        };
        let (mb_, bytes, unwind) = (mb(b.bytes), thousands(b.bytes), mb(b.unwind_bytes));
        format!(
            "{mb_:.2} MB ({bytes} bytes, {}, {stripped}; unwind tables {unwind:.2} MB of it)",
            b.arch
        )
    };
    let bootstrap = |name: &str| lambda_bootstrap(name).and_then(|p| inspect(&p).ok());
    let release = |name: &str| inspect(&binary(name)).ok();
    let (figure, size) = match bootstrap(FUNCTIONS[0].0).filter(|b| b.arch == "arm64") {
        Some(b) => (
            "order-writer `bootstrap`, arm64 (cargo lambda build --release --arm64)",
            Ok(b),
        ),
        None => {
            let host = inspect(&binary(FUNCTIONS[0].0));
            if host.is_ok() {
                section.notes.push("No `target/lambda/order-writer/bootstrap` was built (no cargo-lambda in .tools/, or no aarch64 Rust target), so the size row is this machine's release binary instead.".into());
            }
            let figure =
                "order-writer release binary (host stand-in: no arm64 `bootstrap` was built)";
            (figure, host)
        }
    };
    let size = size.map(|b| (describe(&b), mb(b.bytes)));
    let limit = AtMost(ORDER_WRITER_MB);
    section.rows.push(Row::measured(figure, size, limit, "MB"));
    // The functions' sizes where `of` finds a binary, from the `skip`th function on.
    let mut sizes = |figure: &str, of: &dyn Fn(&str) -> Option<Binary>, skip: usize| {
        let known: Vec<String> = (FUNCTIONS.iter().skip(skip))
            .filter_map(|(name, _)| Some(format!("{name} {:.2} MB", mb(of(name)?.bytes))))
            .collect();
        if !known.is_empty() {
            section.rows.push(Row::info(figure, known.join(", ")));
        }
    };
    sizes("other `bootstrap`s, arm64", &bootstrap, 1);
    sizes("release binaries on this machine (x86_64)", &release, 0);
    section
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_machine_of_an_elf_file() {
        let me = inspect(&std::env::current_exe().unwrap()).unwrap();
        assert_eq!(me.arch, std::env::consts::ARCH.replace("aarch64", "arm64"));
        assert!(me.bytes > me.unwind_bytes && me.unwind_bytes > 0);
        assert!(elf_facts(b"#!/bin/sh\n").is_none());
    }

    #[test]
    fn the_order_writers_size_is_the_first_row_built_or_not() {
        let first = section().rows.remove(0);
        assert!(first.figure.starts_with("order-writer"), "{first:?}");
        assert_eq!(first.goal, "≤ 4 MB");
    }
}
