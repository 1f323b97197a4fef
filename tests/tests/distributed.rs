//! Data-parallel training is independent of the number of processes: a run
//! with S = 4 shards gives the same weights, optimiser state, bank, losses and
//! sampler diagnostics, **bit for bit**, in one process and as 2 or 4 ranks
//! (threads exchanging through `ThreadComm`; the same runs under `mpirun` are
//! in `tests/tests/mpi.rs`). The opt-in all-reduce mode agrees to float
//! rounding. A failure on one rank stops every rank with the same error.

use std::time::Duration;

use hatebm_rs::backend::Backend;
use hatebm_rs::cpu::CpuBackend;
use hatebm_rs::dist::{Communicator, DistConfig, Reduce, SingleProcess, ThreadComm};
use hatebm_rs::nets::{BuildNets, EnergyArch, GeneratorArch};
use hatebm_rs::noise::{NoiseKey, SeededNoise, Stream};
use hatebm_rs::optim::{Adam, AdamConfig};
use hatebm_rs::sampler::LangevinConfig;
use hatebm_rs::train::{GenUpdate, Mode, Net, StepStats, TrainConfig, Trainer, TrainerSettings};
use hatebm_rs::{Error, Result};

const SEED: u64 = 11;
const BATCH: usize = 8;
const SHARDS: usize = 4;
const ITERS: u64 = 4;

/// The networks of a case.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Nets {
    Mlp,
    Sngan,
}

/// One case: a mode, its networks and its settings.
#[derive(Clone, Debug)]
struct Case {
    nets: Nets,
    settings: TrainerSettings,
}

fn case(mode: Mode, nets: Nets, reduce: Reduce) -> Case {
    let adam = AdamConfig {
        lr: 1e-3,
        clip_grad_norm: Some(5.0),
        ema_decay: Some(0.99),
        ..AdamConfig::default()
    };
    Case {
        nets,
        settings: TrainerSettings {
            train: TrainConfig {
                mode,
                steps: ITERS,
                batch_size: BATCH,
                data_epsilon: 1e-2,
                bank_size: 32,
                persistent_bank_size: 32,
                rejuvenation: 0.25,
                coop_latent_steps: 2,
                ..TrainConfig::default()
            },
            langevin: LangevinConfig {
                steps: 3,
                temperature: 0.1,
                eps_res: 0.05,
                eps_latent: 0.1,
                clip_res: Some(0.1),
                prior_sigma_res: Some(0.5),
                update_latents: hatebm_rs::train::mode_blocks(mode).0,
                update_res: hatebm_rs::train::mode_blocks(mode).1,
                ..LangevinConfig::default()
            },
            ebm_optim: adam.clone(),
            gen_optim: adam,
            seed: SEED,
            init_bank: true,
            dist: DistConfig {
                shards: SHARDS,
                reduce,
                check_every: 2,
            },
        },
    }
}

/// Everything a run's ranks must agree on, on the host.
#[derive(Debug, PartialEq)]
struct State {
    /// Weights, optimiser moments, EMA and counters, as bit patterns.
    replicated: Vec<(String, Vec<u32>)>,
    /// The whole bank (all shards), as bit patterns.
    bank: Vec<u32>,
    /// Per-iteration losses and diagnostics, as bit patterns.
    stats: Vec<Vec<u64>>,
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn stat_bits(s: &StepStats) -> Vec<u64> {
    let l = &s.langevin;
    let mut v = vec![
        s.loss_ebm,
        s.energy_pos,
        s.energy_neg,
        s.loss_gen.unwrap_or(0.0),
        l.mean_energy,
        l.last_energy,
        l.drift_norm_res,
        l.drift_norm_latent,
        l.clip_frac_res,
        l.clip_frac_latent,
        l.mean_latent_norm,
    ];
    v.extend(&l.energy_per_step);
    v.iter().map(|x| x.to_bits()).collect()
}

fn optimiser<B: Backend>(be: &B, o: &Adam<B>, what: &str, out: &mut Vec<(String, Vec<u32>)>) {
    out.push((
        format!("{what}.step"),
        vec![o.steps_taken() as u32, (o.steps_taken() >> 32) as u32],
    ));
    out.push((format!("{what}.lr_scale"), vec![o.lr_scale().to_bits()]));
    let (m, v) = o.moments();
    for (i, t) in m.iter().enumerate() {
        if let Some(t) = t {
            out.push((format!("{what}.m{i}"), bits(&be.to_host(t).unwrap())));
        }
    }
    for (i, t) in v.iter().enumerate() {
        if let Some(t) = t {
            out.push((format!("{what}.v{i}"), bits(&be.to_host(t).unwrap())));
        }
    }
    for (i, t) in o.ema().into_iter().flatten().enumerate() {
        if let Some(t) = t {
            out.push((format!("{what}.ema{i}"), bits(&be.to_host(t).unwrap())));
        }
    }
}

fn build<B: BuildNets>(be: &B, c: &Case, comm: Box<dyn Communicator>) -> Result<Trainer<B>> {
    let (energy, generator) = match c.nets {
        Nets::Mlp => (
            be.build_energy(
                &EnergyArch::Mlp {
                    dims: vec![2, 16, 16, 1],
                },
                SEED,
            )?,
            be.build_generator(
                &GeneratorArch::Mlp {
                    dims: vec![2, 16, 16, 2],
                },
                SEED + 1,
            )?,
        ),
        Nets::Sngan => (
            be.build_energy(
                &EnergyArch::Sngan {
                    res: 32,
                    nch: 3,
                    ngf: 8,
                },
                SEED,
            )?,
            be.build_generator(
                &GeneratorArch::Sngan {
                    res: 32,
                    nz: 16,
                    ngf: 8,
                    nch: 3,
                    out_factor: 2.0,
                },
                SEED + 1,
            )?,
        ),
    };
    let generator = c.settings.train.mode.has_generator().then_some(generator);
    Trainer::new_distributed(
        be.clone(),
        c.settings.clone(),
        energy,
        generator,
        &mut SeededNoise,
        comm,
    )
}

/// The data batch of iteration `it` (the same on every rank).
fn batch<B: Backend>(be: &B, nets: Nets, it: u64) -> B::Tensor {
    let shape: Vec<usize> = match nets {
        Nets::Mlp => vec![BATCH, 2],
        Nets::Sngan => vec![BATCH, 3, 32, 32],
    };
    let mut t = be.zeros(&shape).unwrap();
    be.fill_normal(&mut t, NoiseKey::new(SEED, Stream::User, [it, 0]))
        .unwrap();
    let h: Vec<f32> = be
        .to_host(&t)
        .unwrap()
        .iter()
        .map(|v| (0.5 * v).tanh())
        .collect();
    be.from_host(&h, &shape).unwrap()
}

/// Trains `ITERS` iterations on one rank and returns its state.
fn train_rank<B: BuildNets>(be: &B, c: &Case, comm: Box<dyn Communicator>) -> Result<State> {
    let mut t = build(be, c, comm)?;
    let mut stats = Vec::new();
    for it in 0..ITERS {
        stats.push(stat_bits(
            &t.step(&batch(be, c.nets, it), &mut SeededNoise)?,
        ));
    }
    let mut replicated = Vec::new();
    for (n, _, v) in t.energy().params().to_host(be)? {
        replicated.push((format!("ebm.{n}"), bits(&v)));
    }
    if let Some(g) = &t.generator() {
        for (n, _, v) in g.params().to_host(be)? {
            replicated.push((format!("gen.{n}"), bits(&v)));
        }
    }
    optimiser(be, t.ebm_optimiser(), "ebm_opt", &mut replicated);
    if let Some(o) = &t.gen_optimiser() {
        optimiser(be, o, "gen_opt", &mut replicated);
    }
    let bank = match t.global_bank()? {
        Some(b) => {
            let mut v = bits(&be.to_host(&b.x)?);
            if let Some(z) = &b.z {
                v.extend(bits(&be.to_host(z)?));
            }
            v
        }
        None => Vec::new(),
    };
    Ok(State {
        replicated,
        bank,
        stats,
    })
}

/// Runs `f(rank's communicator, case)` on `ranks` threads of one
/// `ThreadComm` group (collectives give up after `timeout_s`); every rank's
/// result, in rank order.
fn on_ranks<T: Send + 'static>(
    ranks: usize,
    timeout_s: u64,
    c: &Case,
    f: fn(ThreadComm, Case) -> T,
) -> Vec<T> {
    let comms = ThreadComm::group_with_timeout(ranks, Duration::from_secs(timeout_s)).unwrap();
    let handles: Vec<_> = comms
        .into_iter()
        .map(|comm| {
            let c = c.clone();
            std::thread::spawn(move || f(comm, c))
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// Runs the case as `ranks` ranks (threads), returning every rank's result.
fn train_ranks<B: BuildNets + Send + 'static>(
    make: fn() -> B,
    c: &Case,
    ranks: usize,
) -> Vec<Result<State>> {
    if ranks == 1 {
        return vec![train_rank(&make(), c, Box::new(SingleProcess))];
    }
    let comms = ThreadComm::group_with_timeout(ranks, Duration::from_secs(120)).unwrap();
    let handles: Vec<_> = comms
        .into_iter()
        .map(|comm| {
            let c = c.clone();
            std::thread::spawn(move || train_rank(&make(), &c, Box::new(comm)))
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn first_difference(a: &State, b: &State) -> String {
    for (x, y) in a.replicated.iter().zip(&b.replicated) {
        if x != y {
            return format!("tensor {}", x.0);
        }
    }
    if a.bank != b.bank {
        return "bank".into();
    }
    for (i, (x, y)) in a.stats.iter().zip(&b.stats).enumerate() {
        if x != y {
            return format!("stats of iteration {i}");
        }
    }
    "lengths".into()
}

/// The case gives bitwise-equal states at 1, 2 and 4 ranks.
fn check_rank_independent<B: BuildNets + Send + 'static>(make: fn() -> B, c: &Case) {
    let one = train_ranks(make, c, 1).pop().unwrap().unwrap();
    assert!(!one.replicated.is_empty());
    for ranks in [2, 4] {
        for (r, s) in train_ranks(make, c, ranks).into_iter().enumerate() {
            let s = s.unwrap_or_else(|e| panic!("{ranks} ranks, rank {r}: {e}"));
            assert!(
                s == one,
                "{:?} with {ranks} ranks, rank {r}: differs from one process at {}",
                c.settings.train.mode,
                first_difference(&s, &one)
            );
        }
    }
}

fn cpu() -> CpuBackend {
    CpuBackend::new()
}

#[test]
fn synthesis_mlp_is_bitwise_independent_of_the_rank_count() {
    check_rank_independent(cpu, &case(Mode::Synthesis, Nets::Mlp, Reduce::Ordered));
}

#[test]
fn synthesis_sngan_is_bitwise_independent_of_the_rank_count() {
    check_rank_independent(cpu, &case(Mode::Synthesis, Nets::Sngan, Reduce::Ordered));
}

#[test]
fn persistent_baseline_is_bitwise_independent_of_the_rank_count() {
    check_rank_independent(cpu, &case(Mode::Persistent, Nets::Mlp, Reduce::Ordered));
}

#[test]
fn every_other_mode_is_bitwise_independent_of_the_rank_count() {
    for mode in [
        Mode::ShortRun,
        Mode::Cooperative,
        Mode::Retrofit,
        Mode::NoResidual,
    ] {
        check_rank_independent(cpu, &case(mode, Nets::Mlp, Reduce::Ordered));
    }
    let mut current = case(Mode::Synthesis, Nets::Mlp, Reduce::Ordered);
    current.settings.train.gen_update = GenUpdate::Current;
    check_rank_independent(cpu, &current);
}

#[cfg(feature = "tch")]
#[test]
fn tch_synthesis_is_bitwise_independent_of_the_rank_count() {
    check_rank_independent(
        hatebm_tests::tch_test_backend,
        &case(Mode::Synthesis, Nets::Mlp, Reduce::Ordered),
    );
}

/// One shard is the single-process trainer of before: `Trainer::new` and a
/// distributed trainer with S = 1 agree bit for bit.
#[test]
fn one_shard_is_the_plain_trainer() {
    let mut c = case(Mode::Synthesis, Nets::Mlp, Reduce::Ordered);
    c.settings.dist.shards = 1;
    let be = cpu();
    let a = train_rank(&be, &c, Box::new(SingleProcess)).unwrap();
    let mut t = Trainer::new(
        be,
        c.settings.clone(),
        be.build_energy(
            &EnergyArch::Mlp {
                dims: vec![2, 16, 16, 1],
            },
            SEED,
        )
        .unwrap(),
        Some(
            be.build_generator(
                &GeneratorArch::Mlp {
                    dims: vec![2, 16, 16, 2],
                },
                SEED + 1,
            )
            .unwrap(),
        ),
        &mut SeededNoise,
    )
    .unwrap();
    let mut stats = Vec::new();
    for it in 0..ITERS {
        stats.push(stat_bits(
            &t.step(&batch(&be, Nets::Mlp, it), &mut SeededNoise)
                .unwrap(),
        ));
    }
    assert_eq!(stats, a.stats);
}

/// Shards change the arithmetic (micro-batches), not the algorithm: with
/// no bank (whose shards are initialised and drawn per shard), S = 4 and
/// S = 1 give the same first-iteration loss (row-wise energies do not depend
/// on the micro-batch) and an EBM gradient equal to float rounding. Bound:
/// each gradient element sums 16 row terms in f32 in another order, an error
/// of at most 16·2⁻²⁴·Σ|terms| ≈ 1e-6 of the terms' size; 1e-5 of the
/// gradient's norm leaves a margin of ten for cancellation.
#[test]
fn shards_change_only_the_rounding() {
    let be = cpu();
    let mut grads = Vec::new();
    let mut losses = Vec::new();
    for shards in [1, SHARDS] {
        let mut c = case(Mode::ShortRun, Nets::Mlp, Reduce::Ordered);
        c.settings.dist.shards = shards;
        let mut t = build(&be, &c, Box::new(SingleProcess)).unwrap();
        let s = t.step(&batch(&be, c.nets, 0), &mut SeededNoise).unwrap();
        losses.push(s.loss_ebm);
        let g: Vec<f32> = t
            .ebm_grads()
            .tensors
            .iter()
            .flatten()
            .flat_map(|x| be.to_host(x).unwrap())
            .collect();
        grads.push(g);
    }
    assert!(
        (losses[0] - losses[1]).abs() <= 1e-12 * losses[0].abs().max(1.0),
        "{losses:?}"
    );
    let norm = grads[0]
        .iter()
        .map(|v| f64::from(*v).powi(2))
        .sum::<f64>()
        .sqrt();
    let err = grads[0]
        .iter()
        .zip(&grads[1])
        .map(|(a, b)| f64::from(a - b).powi(2))
        .sum::<f64>()
        .sqrt();
    assert!(
        norm > 0.0 && err <= 1e-5 * norm,
        "normwise error {err} of {norm}"
    );
    assert!(grads[0] != grads[1] || err == 0.0);
}

/// The opt-in all-reduce agrees with the ordered reduction within float
/// rounding: the four shard partials are added in another order, so each
/// gradient element differs by at most a few ulps of the sum (relative 1e-6
/// bounds 3 additions in f32 with margin), and Adam's normalised step turns
/// that into weight differences far below one step (lr = 1e-3): < 1e-5.
#[test]
fn all_reduce_mode_agrees_to_rounding() {
    let ordered = train_ranks(cpu, &case(Mode::Synthesis, Nets::Mlp, Reduce::Ordered), 1)
        .pop()
        .unwrap()
        .unwrap();
    for ranks in [2, 4] {
        for s in train_ranks(
            cpu,
            &case(Mode::Synthesis, Nets::Mlp, Reduce::AllReduce),
            ranks,
        ) {
            let s = s.unwrap();
            for ((name, a), (_, b)) in s.replicated.iter().zip(&ordered.replicated) {
                if name.ends_with(".step") || name.ends_with("lr_scale") {
                    assert_eq!(a, b);
                    continue;
                }
                for (x, y) in a.iter().zip(b) {
                    let (x, y) = (f32::from_bits(*x), f32::from_bits(*y));
                    assert!((x - y).abs() <= 1e-5, "{name}: {x} vs {y}");
                }
            }
        }
    }
}

#[test]
fn shards_that_do_not_divide_are_config_errors() {
    let be = cpu();
    let mut c = case(Mode::Synthesis, Nets::Mlp, Reduce::Ordered);
    c.settings.dist.shards = 3;
    let e = build(&be, &c, Box::new(SingleProcess)).unwrap_err();
    assert!(
        matches!(&e, Error::Config(m) if m.contains("train.batch_size")),
        "{e}"
    );
    c.settings.dist.shards = 4;
    c.settings.train.bank_size = 30;
    let e = build(&be, &c, Box::new(SingleProcess)).unwrap_err();
    assert!(
        matches!(&e, Error::Config(m) if m.contains("train.bank_size")),
        "{e}"
    );
    // Three ranks cannot share four shards.
    let comms = ThreadComm::group_with_timeout(3, Duration::from_secs(30)).unwrap();
    let c = case(Mode::Synthesis, Nets::Mlp, Reduce::Ordered);
    for comm in comms {
        let e = build(&be, &c, Box::new(comm)).unwrap_err();
        assert!(
            matches!(&e, Error::Config(m) if m.contains("must divide")),
            "{e}"
        );
    }
}

/// A rank whose data holds a NaN: every rank stops at the same iteration
/// with the same non-finite error, naming the rank, and no rank hangs.
#[test]
fn a_failure_on_one_rank_stops_every_rank_with_the_same_error() {
    let c = case(Mode::Synthesis, Nets::Mlp, Reduce::Ordered);
    let results = on_ranks(2, 60, &c, |comm, c| -> (u64, Error) {
        let be = cpu();
        let rank = comm.rank();
        let mut t = build(&be, &c, Box::new(comm)).unwrap();
        for it in 0..ITERS {
            let mut x = batch(&be, c.nets, it);
            if it == 2 && rank == 1 {
                // Rank 1 sees a NaN in a row it owns (rows 4..8).
                let mut h = be.to_host(&x).unwrap();
                h[2 * 6] = f32::NAN;
                x = be.from_host(&h, &[BATCH, 2]).unwrap();
            }
            if let Err(e) = t.step(&x, &mut SeededNoise) {
                return (it, e);
            }
        }
        panic!("no rank failed");
    });
    for (it, e) in &results {
        assert_eq!(*it, 2);
        assert!(matches!(e, Error::NonFinite(_)), "{e}");
    }
    // The data check runs on the replicated batch, so rank 0 sees it too;
    // either way, both report the same message.
    assert_eq!(results[0].1.to_string(), results[1].1.to_string());
}

/// A rank that dies (its thread returns) does not leave the others hanging:
/// their next collective fails with a message naming it.
#[test]
fn a_rank_that_leaves_stops_the_others() {
    let c = case(Mode::Synthesis, Nets::Mlp, Reduce::Ordered);
    let results = on_ranks(2, 60, &c, |comm, c| -> Option<Error> {
        let be = cpu();
        let rank = comm.rank();
        let mut t = build(&be, &c, Box::new(comm)).unwrap();
        for it in 0..ITERS {
            if rank == 1 && it == 1 {
                return None;
            }
            if let Err(e) = t.step(&batch(&be, c.nets, it), &mut SeededNoise) {
                return Some(e);
            }
        }
        panic!("rank {rank} finished although rank 1 left");
    });
    let mut results = results.into_iter();
    let e = results.next().unwrap().expect("rank 0 fails");
    assert!(
        matches!(&e, Error::Distributed(m) if m.contains("rank 1 of 2 left")),
        "{e}"
    );
}

/// The periodic replica check (`dist.check_every = 2` here) catches ranks
/// whose replicated state has drifted apart (simulated: one weight of rank
/// 1 nudged by one ulp after building): every rank stops with an error
/// naming rank 1 at the first check.
#[test]
fn replicas_that_drift_apart_are_caught() {
    let c = case(Mode::Synthesis, Nets::Mlp, Reduce::Ordered);
    let results = on_ranks(2, 60, &c, |comm, c| -> (u64, Error) {
        let be = cpu();
        let rank = comm.rank();
        let mut t = build(&be, &c, Box::new(comm)).unwrap();
        if rank == 1 {
            let mut w = t.energy().params().to_host(&be).unwrap();
            w[0].2[0] = f32::from_bits(w[0].2[0].to_bits() + 1);
            t.load_weights(Net::Energy, &w).unwrap();
        }
        for it in 0..ITERS {
            if let Err(e) = t.step(&batch(&be, c.nets, it), &mut SeededNoise) {
                return (it, e);
            }
        }
        panic!("the drift was not caught");
    });
    for (it, e) in results {
        assert_eq!(it, 1, "caught after the second iteration");
        assert!(
            matches!(&e, Error::Distributed(m) if m.contains("[1]") && m.contains("drifted")),
            "{e}"
        );
    }
}
