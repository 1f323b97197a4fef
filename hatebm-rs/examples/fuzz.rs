//! The local fuzz runner (stable toolchain, seeded mutations; see
//! `hatebm_rs::fuzz`).
//!
//! ```text
//! cargo run --release -p hatebm-rs --example fuzz -- seeds tests/fuzz/corpus
//! cargo run --release -p hatebm-rs --example fuzz -- run TARGET EXECS [SEED]
//! ```
//!
//! `seeds` (re)writes the seed corpus of every target; `run` replays
//! `tests/fuzz/corpus/TARGET` and then mutates it until EXECS executions,
//! printing executions per second, and on a panic writes the input to
//! `tests/fuzz/crashes/` and exits 1.

use std::path::{Path, PathBuf};
use std::time::Instant;

use hatebm_rs::config::{ConfigBuilder, presets};
use hatebm_rs::cpu::CpuBackend;
use hatebm_rs::data::NpyData;
use hatebm_rs::data::npy::{NpyArray, encode_npy};
use hatebm_rs::fuzz;
use hatebm_rs::run::{Run, Silent};

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fuzz/corpus")
}

fn png_bytes(w: u32, h: u32, color: png::ColorType, depth: png::BitDepth) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut e = png::Encoder::new(&mut out, w, h);
        e.set_color(color);
        e.set_depth(depth);
        if color == png::ColorType::Indexed {
            e.set_palette(vec![0u8, 0, 0, 255, 255, 255]);
        }
        let mut wr = e.write_header().expect("png header");
        let ch = match color {
            png::ColorType::Grayscale | png::ColorType::Indexed => 1,
            png::ColorType::GrayscaleAlpha => 2,
            png::ColorType::Rgb => 3,
            png::ColorType::Rgba => 4,
        };
        let bytes_per = if depth == png::BitDepth::Sixteen {
            2
        } else {
            1
        };
        let n = (w * h) as usize * ch * bytes_per;
        let data: Vec<u8> = (0..n)
            .map(|i| (i * 37 % 256) as u8)
            .map(|v| {
                if color == png::ColorType::Indexed {
                    v % 2
                } else {
                    v
                }
            })
            .collect();
        wr.write_image_data(&data).expect("png data");
    }
    out
}

fn checkpoint_bytes(sets: &[(&str, &str)]) -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("hatebm-fuzz-seeds-{}", std::process::id()));
    let mut b = ConfigBuilder::new();
    for (k, v) in [
        ("preset", "\"toy2d\""),
        ("train.batch_size", "8"),
        ("train.bank_size", "16"),
        ("train.persistent_bank_size", "16"),
        ("langevin.steps", "3"),
        ("data", "{ kind = \"toy\", name = \"ring8\", n = 200 }"),
        ("output.plot", "false"),
        ("output.grid_samples", "4"),
        ("eval.num_samples", "0"),
        ("ebm_optim.ema_decay", "0.9"),
    ]
    .iter()
    .chain(sets)
    {
        b.set(k, v).expect("seed config");
    }
    b.set("output.dir", &format!("\"{}\"", dir.display()))
        .expect("dir");
    let mut run = Run::new(CpuBackend::new(), b.build().expect("seed config")).expect("run");
    run.train(Some(2), &mut Silent).expect("train");
    let p = dir.join("checkpoint.safetensors");
    let bytes = std::fs::read(&p).expect("checkpoint");
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

fn seeds() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let config_toml: Vec<Vec<u8>> = presets::names()
        .iter()
        .map(|n| presets::text(n).expect("preset").as_bytes().to_vec())
        .chain([
            b"preset = \"digits\"\n[train]\nmode = \"short_run\"\n".to_vec(),
            b"seed = 3\nthreads = 1\n[langevin]\nsteps = 5\nclip_res = 1.0\n".to_vec(),
            b"[data]\nkind = \"toy\"\nname = \"two_moons\"\nn = 100\n".to_vec(),
        ])
        .collect();
    let config_set: Vec<Vec<u8>> = [
        "langevin.steps\x0050",
        "backend\0cpu",
        "model.energy\0{ kind = \"mlp\", dims = [64, 32, 1] }",
        "train.mode\0short_run",
        "data\0{ kind = \"toy\", name = \"ring8\", n = 100 }",
        "seed\x001",
        "guard.policy\0rollback",
        "ebm_optim.lr_schedule\0[[100, 1e-4]]",
        "memory_limit_gib\x002.5",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let checkpoint = vec![
        checkpoint_bytes(&[]),
        checkpoint_bytes(&[("train.mode", "\"short_run\"")]),
        checkpoint_bytes(&[("train.mode", "\"persistent\"")]),
    ];
    let npy = vec![
        encode_npy(&NpyArray {
            shape: vec![2, 3],
            data: NpyData::F32(vec![0.0, 1.0, -1.0, 0.5, 2.0, -0.25]),
        })
        .expect("npy"),
        encode_npy(&NpyArray {
            shape: vec![2, 2, 2],
            data: NpyData::U8(vec![0, 1, 2, 3, 250, 251, 252, 255]),
        })
        .expect("npy"),
        encode_npy(&NpyArray {
            shape: vec![3],
            data: NpyData::F64(vec![1.0, -2.0, 3.5]),
        })
        .expect("npy"),
    ];
    let mut idx_images = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 3];
    idx_images.extend((0..18u8).map(|i| i * 14));
    let idx_labels = vec![0, 0, 8, 1, 0, 0, 0, 3, 1, 7, 9];
    let mut cifar = Vec::new();
    for label in [3u8, 7] {
        cifar.push(label);
        cifar.extend((0..3072u32).map(|i| (i * 13 % 256) as u8));
    }
    let png = vec![
        png_bytes(3, 2, png::ColorType::Grayscale, png::BitDepth::Eight),
        png_bytes(2, 2, png::ColorType::Rgb, png::BitDepth::Sixteen),
        png_bytes(4, 4, png::ColorType::Indexed, png::BitDepth::Eight),
        png_bytes(2, 3, png::ColorType::GrayscaleAlpha, png::BitDepth::Eight),
    ];
    vec![
        ("config_toml", config_toml),
        ("config_set", config_set),
        ("checkpoint", checkpoint),
        ("npy", npy),
        ("idx", vec![idx_images, idx_labels]),
        ("cifar", vec![cifar]),
        ("png", png),
    ]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("seeds") => {
            let root = args.get(1).map_or_else(corpus_root, PathBuf::from);
            for (name, files) in seeds() {
                let d = root.join(name);
                std::fs::create_dir_all(&d).expect("corpus dir");
                for (i, f) in files.iter().enumerate() {
                    std::fs::write(d.join(format!("seed-{i:02}")), f).expect("write seed");
                }
                println!("{name}: {} seeds in {}", files.len(), d.display());
            }
        }
        Some("run") if args.len() >= 3 => {
            let name = &args[1];
            let execs: u64 = args[2].parse().expect("EXECS");
            let seed: u64 = args.get(3).map_or(0, |s| s.parse().expect("SEED"));
            let target = fuzz::target(name).unwrap_or_else(|| {
                eprintln!(
                    "unknown target {name}; targets: {:?}",
                    fuzz::TARGETS.iter().map(|t| t.0).collect::<Vec<_>>()
                );
                std::process::exit(2)
            });
            let corpus = fuzz::read_corpus(&corpus_root().join(name)).expect("corpus");
            // Library errors are expected; keep the log quiet.
            let t0 = Instant::now();
            let mutations = execs.saturating_sub(corpus.len() as u64);
            let stats = fuzz::run(target, &corpus, mutations, seed);
            let s = t0.elapsed().as_secs_f64();
            println!(
                "{name}: {} executions in {s:.1} s ({:.0}/s), corpus {} files ({} bytes), seed {seed}",
                stats.execs,
                stats.execs as f64 / s,
                corpus.len(),
                corpus.iter().map(Vec::len).sum::<usize>()
            );
            if let Some((input, msg)) = stats.crash {
                let d = corpus_root().join("../crashes");
                std::fs::create_dir_all(&d).expect("crash dir");
                let p = d.join(format!("{name}-{seed}-{}", stats.execs));
                std::fs::write(&p, &input).expect("write crash");
                eprintln!("CRASH: {msg}\ninput written to {}", p.display());
                std::process::exit(1);
            }
        }
        _ => {
            eprintln!("usage: fuzz seeds [DIR] | fuzz run TARGET EXECS [SEED]");
            std::process::exit(2);
        }
    }
}
