//! Damaged libraries, killed builds and full disks: every damaged file is
//! named in an error (never a panic or a wrong answer), a killed build leaves
//! the old library or the new one, and a full disk leaves the old one.

mod common;

use common::{build, build_args, build_env, build_ok, hf_daily, papersim, result_ids, s, stderr};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use serde_json::Value;

const QUERY: &str = "objective-mismatch-in-model-based-reinforcement-learning";

/// The answer a library gives, or the error text.
fn answer(lib: &Path) -> Result<Value, String> {
    let o = papersim(&[
        "similar",
        "--library",
        lib.to_str().unwrap(),
        QUERY,
        "-k",
        "5",
        "--json",
    ]);
    if o.status.success() {
        Ok(serde_json::from_slice(&o.stdout).unwrap())
    } else {
        Err(stderr(&o))
    }
}

/// Every file the manifest names, plus the manifest, relative to the library.
fn library_files(lib: &Path) -> Vec<String> {
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(lib.join("manifest.json")).unwrap()).unwrap();
    let f = &m["files"];
    let mut out = vec!["manifest.json".to_string()];
    for k in ["papers", "vectors", "flat", "rows", "sentences"] {
        // The sentence vectors are optional (`build --no-sentences`).
        if let Some(name) = f[k]["name"].as_str() {
            out.push(name.to_string());
        }
    }
    let kdir = f["keyword_dir"].as_str().unwrap();
    for e in f["keyword"].as_array().unwrap() {
        out.push(format!("{kdir}/{}", e["name"].as_str().unwrap()));
    }
    out
}

/// Files a query reads only in part (or not at all).
fn read_in_part(file: &str) -> bool {
    file.ends_with(".jsonl")
}

#[test]
fn a_flipped_byte_or_truncation_in_any_file_is_named_never_a_panic() {
    if common::model_dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    build_ok(&hf_daily(), &lib, &["--limit", "61"]);
    let good = answer(&lib).unwrap();
    let files = library_files(&lib);
    assert!(files.len() >= 9, "{files:?}");
    assert!(
        files.iter().any(|f| f.starts_with("sentences.")),
        "a default build stores sentence vectors: {files:?}"
    );
    for file in &files {
        for damage in ["flip", "truncate"] {
            let copy = tmp.path().join(format!("copy-{damage}"));
            let _ = std::fs::remove_dir_all(&copy);
            common::copy_dir(&lib, &copy);
            let target = copy.join(file);
            let mut bytes = std::fs::read(&target).unwrap();
            if bytes.is_empty() {
                continue;
            }
            match damage {
                "flip" => {
                    let i = bytes.len() / 2;
                    bytes[i] ^= 0x01;
                }
                _ => bytes.truncate(bytes.len() / 2),
            }
            std::fs::write(&target, &bytes).unwrap();

            let name = Path::new(file).file_name().unwrap().to_str().unwrap();
            match answer(&copy) {
                // A query checks each file it reads: the papers' lines it does
                // not show are not read, so a flipped byte there cannot change
                // its answer; verify finds it below. Sizes are checked at open.
                Ok(v) if damage == "flip" && read_in_part(file) => {
                    assert_eq!(v, good, "a flip in {file} changed the answer silently")
                }
                Ok(v) => panic!("{damage} of {file} went unnoticed: {v}"),
                Err(e) => {
                    assert!(!e.contains("panicked"), "{damage} {file}: {e}");
                    assert!(
                        e.contains(name),
                        "{damage} of {file}: error does not name it: {e}"
                    );
                }
            }
            let v = papersim(&["verify", "--library", copy.to_str().unwrap()]);
            assert_ne!(v.status.code(), Some(0), "verify passed a damaged {file}");
            let said = format!("{}{}", String::from_utf8_lossy(&v.stdout), stderr(&v));
            assert!(!said.contains("panicked"), "{said}");
            assert!(said.contains(name), "verify does not name {file}: {said}");
        }
    }
    // The original still answers as before.
    assert_eq!(answer(&lib).unwrap(), good);
}

/// Every sealed file (vectors, flat graph, rows) is intact by its own crc32
/// whatever its content; the manifest's seal ties it to this library, so an
/// intact file from another library or generation is refused, not searched.
#[test]
fn an_intact_file_from_another_library_is_named_not_searched() {
    if common::model_dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (lib, other) = (tmp.path().join("lib"), tmp.path().join("other"));
    build_ok(&hf_daily(), &lib, &["--limit", "20"]);
    build_ok(
        &hf_daily(),
        &other,
        &["--limit", "20", "--template", "{abstract}"],
    );
    assert!(answer(&lib).is_ok());

    let vectors = |lib: &Path| library_files(lib)[2].clone();
    let (mine, theirs) = (lib.join(vectors(&lib)), other.join(vectors(&other)));
    let bytes = std::fs::read(&theirs).unwrap();
    assert_eq!(bytes.len() as u64, std::fs::metadata(&mine).unwrap().len());
    assert_ne!(bytes, std::fs::read(&mine).unwrap());
    std::fs::write(&mine, bytes).unwrap();

    let name = mine.file_name().unwrap().to_str().unwrap();
    let e = answer(&lib).expect_err("another library's vectors were searched");
    assert!(
        e.contains(name) && e.contains("not the file this library wrote"),
        "{e}"
    );
    let v = papersim(&["verify", "--library", lib.to_str().unwrap()]);
    assert_ne!(v.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&v.stdout).contains(name));
}

#[test]
fn verify_repair_rebuilds_a_damaged_graph_from_the_stored_vectors() {
    if common::model_dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    build_ok(&hf_daily(), &lib, &["--limit", "61"]);
    let exact = |lib: &Path| {
        let o = papersim(&[
            "similar",
            "--library",
            lib.to_str().unwrap(),
            QUERY,
            "-k",
            "5",
            "--json",
            "--mode",
            "dense",
            "--exact",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice::<Value>(&o.stdout).unwrap()
    };
    let before = exact(&lib);
    let graph = lib.join(&library_files(&lib)[3]);
    assert!(graph.to_string_lossy().ends_with(".flat"), "{graph:?}");
    let mut bytes = std::fs::read(&graph).unwrap();
    let i = bytes.len() / 3;
    bytes[i] ^= 0xff;
    std::fs::write(&graph, bytes).unwrap();

    let v = papersim(&["verify", "--library", lib.to_str().unwrap(), "--json"]);
    assert_eq!(v.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&v.stdout).unwrap();
    assert_eq!(report["repairable"], true, "{report}");

    let r = papersim(&[
        "verify",
        "--library",
        lib.to_str().unwrap(),
        "--repair",
        "--json",
    ]);
    assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
    let report: Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(report["repaired"], true);
    assert_eq!(report["ok"], true);
    assert_eq!(exact(&lib), before);

    // Damaged vectors cannot be repaired from themselves.
    let vectors = lib.join(&library_files(&lib)[2]);
    let mut bytes = std::fs::read(&vectors).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x10;
    std::fs::write(&vectors, bytes).unwrap();
    let r = papersim(&[
        "verify",
        "--library",
        lib.to_str().unwrap(),
        "--repair",
        "--json",
    ]);
    assert_eq!(r.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(report["repairable"], false);
}

/// xorshift64*, so the kill schedule is reproducible from the printed seed.
struct Rng(u64);
impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The kill schedule's seed: PAPERSIM_KILL_SEED, else the clock (printed by
/// each test so a failure can be replayed).
fn kill_seed() -> u64 {
    std::env::var("PAPERSIM_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
        | 1
}

#[test]
fn sigkill_at_random_points_of_a_build_leaves_the_old_or_the_new_library() {
    if common::model_dir().is_none() {
        return;
    }
    let seed = kill_seed();
    println!("kill schedule seed {seed} (rerun with PAPERSIM_KILL_SEED={seed})");
    let mut rng = Rng(seed);

    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    // Old state: 30 papers. New state: all 61. Measure how long the new build takes.
    build_ok(&hf_daily(), &lib, &["--limit", "30"]);
    let old = answer(&lib).unwrap();
    let reference = tmp.path().join("reference");
    let start = Instant::now();
    build_ok(&hf_daily(), &reference, &["--limit", "61"]);
    let duration = start.elapsed();
    let new = answer(&reference).unwrap();
    assert_ne!(old, new);

    let (mut saw_old, mut saw_new) = (0, 0);
    for round in 0..20 {
        // Kill anywhere from process start to a little past the usual end.
        let at = duration.mul_f64(rng.next_f64() * 1.1);
        let status = common::kill_after(&build_args(&hf_daily(), &lib, &["--limit", "61"]), at);
        let now = answer(&lib).unwrap_or_else(|e| {
            panic!(
                "round {round}, killed at {at:?} ({status:?}): library broken: {e} (seed {seed})"
            )
        });
        if now == old {
            saw_old += 1;
        } else if now == new {
            saw_new += 1;
            // Back to the old state for the next round.
            build_ok(&hf_daily(), &lib, &["--limit", "30"]);
        } else {
            panic!("round {round}, killed at {at:?}: a mixed state (seed {seed}): {now}");
        }
        assert_eq!(answer(&lib).unwrap(), old);
    }
    println!("20 kills: {saw_old} left the old library, {saw_new} the new one");
    // Stray files of killed builds are cleaned by the next commit.
    build_ok(&hf_daily(), &lib, &["--limit", "61"]);
    let names: Vec<String> = std::fs::read_dir(&lib)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
}

/// Mounts a small tmpfs (needs root, which CI has); None with a printed
/// reason otherwise.
struct Tmpfs(PathBuf);
impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            Some(Tmpfs(dir.to_path_buf()))
        } else {
            common::require(
                PathBuf::from("/nonexistent-tmpfs"),
                "a mountable tmpfs",
                "needs root",
            );
            None
        }
    }
}
impl Tmpfs {
    /// Bytes still free on it (`df`).
    fn free_bytes(&self) -> u64 {
        let out = Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(&self.0)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse::<u64>().ok())
            .unwrap()
    }
}
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_gives_a_clear_error_and_keeps_the_old_library() {
    if common::model_dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&tmp.path().join("small"), "4m") else {
        return;
    };
    let lib = fs.0.join("lib");
    build_ok(&hf_daily(), &lib, &["--limit", "30"]);
    let old = answer(&lib).unwrap();
    // Fill the disk, leaving a few kilobytes.
    let filler = fs.0.join("filler");
    let free = fs.free_bytes();
    std::fs::write(&filler, vec![0u8; free.saturating_sub(20_000) as usize]).unwrap();

    let out = build(&hf_daily(), &lib, &["--limit", "61"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("No space left on device"), "{err}");
    assert!(
        err.contains(lib.to_str().unwrap()),
        "error names no path: {err}"
    );
    assert_eq!(answer(&lib).unwrap(), old);
    // Nothing of the failed generation is left behind.
    let names: Vec<String> = std::fs::read_dir(&lib)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.contains(".2.") && n != "keyword.2" && !n.ends_with(".tmp")),
        "{names:?}"
    );
    drop(fs);
}

#[test]
fn an_interrupted_build_resumes_from_its_checkpoint_and_gives_the_same_library() {
    if common::model_dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let run = |lib: &Path, env: &[(&str, &str)]| {
        build_env(
            &hf_daily(),
            lib,
            &["--limit", "30", "--checkpoint-every", "8", "--json"],
            env,
        )
    };
    // Killed right after the first checkpoint: 8 papers' vectors are saved,
    // no library exists yet.
    let lib = tmp.path().join("lib");
    let killed = run(&lib, &[("PAPERSIM_FAILPOINT", "after-checkpoint")]);
    assert!(!killed.status.success());
    assert!(lib.join("embed-cache.bin").exists());
    assert!(!lib.join("manifest.json").exists());

    let resumed = common::json(&common::ok(run(&lib, &[])));
    assert_eq!(resumed["resumed"], 8, "{resumed}");
    assert_eq!(resumed["embed"]["docs"], 22, "only the rest was embedded");
    assert!(
        !lib.join("embed-cache.bin").exists(),
        "the checkpoint is deleted once the library is committed"
    );

    let clean = tmp.path().join("clean");
    common::ok(run(&clean, &[]));
    let (a, b) = (answer(&lib).unwrap(), answer(&clean).unwrap());
    assert_eq!(result_ids(&a), result_ids(&b));
    for (x, y) in a["results"]
        .as_array()
        .unwrap()
        .iter()
        .zip(b["results"].as_array().unwrap())
    {
        let (x, y) = (x["score"].as_f64().unwrap(), y["score"].as_f64().unwrap());
        assert!((x - y).abs() < 1e-5, "{x} vs {y}");
    }
}

fn add_args<'a>(corpus: &'a Path, lib: &'a Path, limit: &'a str) -> Vec<&'a str> {
    vec![
        "add",
        "--corpus",
        s(corpus),
        "--library",
        s(lib),
        "--limit",
        limit,
    ]
}

/// `add` of the first `limit` HF Daily Papers into `lib`.
fn add(lib: &Path, limit: &str) -> Output {
    papersim(&add_args(&hf_daily(), lib, limit))
}

#[test]
fn sigkill_at_random_points_of_an_add_leaves_the_old_or_the_new_library() {
    if common::model_dir().is_none() {
        return;
    }
    let seed = kill_seed();
    println!("add kill schedule seed {seed} (rerun with PAPERSIM_KILL_SEED={seed})");
    let mut rng = Rng(seed);

    let tmp = tempfile::tempdir().unwrap();
    // Old state: 30 papers. New state: 30 + 31 added.
    let pristine = tmp.path().join("pristine");
    build_ok(&hf_daily(), &pristine, &["--limit", "30"]);
    let old = answer(&pristine).unwrap();
    let reference = tmp.path().join("reference");
    common::copy_dir(&pristine, &reference);
    let start = Instant::now();
    common::ok(add(&reference, "61"));
    let duration = start.elapsed();
    let new = answer(&reference).unwrap();
    assert_ne!(old, new);

    let corpus = hf_daily();
    let lib = tmp.path().join("lib");
    let (mut saw_old, mut saw_new) = (0, 0);
    for round in 0..20 {
        let _ = std::fs::remove_dir_all(&lib);
        common::copy_dir(&pristine, &lib);
        let at = duration.mul_f64(rng.next_f64() * 1.1);
        let status = common::kill_after(&add_args(&corpus, &lib, "61"), at);
        let now = answer(&lib).unwrap_or_else(|e| {
            panic!(
                "round {round}, killed at {at:?} ({status:?}): library broken: {e} (seed {seed})"
            )
        });
        if now == old {
            saw_old += 1;
            // Rerun (every fourth round, for time): what was committed or
            // checkpointed is not lost, and the add completes to exactly
            // the new state.
            if round % 4 == 0 {
                common::ok(add(&lib, "61"));
                assert_eq!(answer(&lib).unwrap(), new, "round {round} (seed {seed})");
            }
        } else if now == new {
            saw_new += 1;
        } else {
            panic!("round {round}, killed at {at:?}: a mixed state (seed {seed}): {now}");
        }
    }
    println!("20 kills of add: {saw_old} left the old library, {saw_new} the new one");
}

#[test]
fn a_full_disk_during_add_gives_a_clear_error_and_keeps_the_old_library() {
    if common::model_dir().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&tmp.path().join("small"), "4m") else {
        return;
    };
    let lib = fs.0.join("lib");
    build_ok(&hf_daily(), &lib, &["--limit", "30"]);
    let old = answer(&lib).unwrap();
    let free = fs.free_bytes();
    // Room for the checkpoint of the new vectors, not for a new generation.
    std::fs::write(
        fs.0.join("filler"),
        vec![0u8; free.saturating_sub(120_000) as usize],
    )
    .unwrap();
    let out = add(&lib, "61");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains(lib.to_str().unwrap()), "names no path: {err}");
    assert_eq!(answer(&lib).unwrap(), old);
    let names: Vec<String> = std::fs::read_dir(&lib)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.contains(".2.") && n != "keyword.2" && !n.ends_with(".tmp")),
        "{names:?}"
    );
    drop(fs);
}
